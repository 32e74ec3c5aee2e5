// `npm start`: runs foldline on its embedded default (or on the NATS servers named by NATS_URL) until SIGINT/SIGTERM.
import { pino } from "pino";
import { startApp } from "./app.js";
import { loadCommandsConfig } from "./commands/config.js";
import { loadProjectionsConfig } from "./projections/config.js";
import { loadStreamsConfig } from "./streams/config.js";

const log = pino({ name: "foldline" });

async function main(): Promise<void> {
  const streams = loadStreamsConfig();
  const config = { streams, commands: loadCommandsConfig(), projections: loadProjectionsConfig(streams.dataDir) };
  const app = await startApp(config, log);
  for (const change of app.streams.changes) log.info(change, "topology changed");
  log.info(
    {
      api: app.url,
      nats: app.streams.url,
      embedded: app.streams.embedded !== undefined,
      serverVersion: app.streams.serverVersion,
      stream: config.streams.stream.name,
      head: await app.streams.store.head(),
      dataDir: config.streams.dataDir,
      projectors: app.projectors.map((p) => p.status()),
    },
    "foldline is up",
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping: finishing the commands in flight");
    app.close().then(
      () => {
        log.info("stopped");
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, "stop failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((err: unknown) => {
  log.fatal({ err }, "foldline could not start");
  process.exitCode = 1;
});
