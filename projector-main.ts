// `npm run projector`: a worker running a projector per read model for the NATS servers named by NATS_URL, until SIGINT/SIGTERM.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { pino } from "pino";
import { loadProjectionsConfig } from "./projections/config.js";
import { createProjector } from "./projections/projector.js";
import { openReadModelDb } from "./projections/read-model-db.js";
import { readModels } from "./projections/read-models/all.js";
import { ConfigError, loadStreamsConfig } from "./streams/config.js";
import { openStreams } from "./streams/open-streams.js";

const log = pino({ name: "foldline-projector" });

async function main(): Promise<void> {
  const streamsConfig = loadStreamsConfig();
  if (streamsConfig.natsUrl === undefined) {
    throw new ConfigError("NATS_URL must name the NATS servers of the foldline whose stream this worker projects");
  }
  const config = loadProjectionsConfig(streamsConfig.dataDir);
  mkdirSync(dirname(config.databaseFile), { recursive: true });
  const streams = await openStreams(streamsConfig);
  const db = openReadModelDb(config.databaseFile);
  const projectors = readModels.map((projection) =>
    createProjector({ store: streams.store, db, projection, log, batchSize: config.batchSize }),
  );
  for (const projector of projectors) projector.start();
  log.info({ database: config.databaseFile, projectors: projectors.map((p) => p.status()) }, "projector is up");

  const stop = (signal: NodeJS.Signals): void => {
    log.info({ signal }, "stopping");
    void (async () => {
      await Promise.all(projectors.map((p) => p.stop()));
      db.close();
      await streams.close();
      log.info({ projectors: projectors.map((p) => p.status()) }, "stopped");
      process.exit(0);
    })();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((err: unknown) => {
  log.fatal({ err }, "projector could not start");
  process.exitCode = 1;
});
