// `npm run projector`: a projector worker of its own, for the NATS servers named by NATS_URL, until SIGINT/SIGTERM.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { pino } from "pino";
import { loadProjectionsConfig } from "./projections/config.js";
import { createProjector } from "./projections/projector.js";
import { openReadModelDb } from "./projections/read-model-db.js";
import { walletsProjection } from "./projections/read-models/wallets.js";
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
  const projector = createProjector({ store: streams.store, db, projection: walletsProjection, log, batchSize: config.batchSize });
  projector.start();
  log.info({ database: config.databaseFile, ...projector.status() }, "projector is up");

  const stop = (signal: NodeJS.Signals): void => {
    log.info({ signal }, "stopping");
    void (async () => {
      await projector.stop();
      db.close();
      await streams.close();
      log.info(projector.status(), "stopped");
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
