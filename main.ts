// `npm start`: runs foldline on its embedded default (or on the NATS servers named by NATS_URL) until SIGINT/SIGTERM.
import { pino } from "pino";
import { loadStreamsConfig } from "./streams/config.js";
import { openStreams } from "./streams/open-streams.js";

const log = pino({ name: "foldline" });

async function main(): Promise<void> {
  const config = loadStreamsConfig();
  const streams = await openStreams(config);
  for (const change of streams.changes) log.info(change, "topology changed");
  log.info(
    {
      nats: streams.url,
      embedded: streams.embedded !== undefined,
      serverVersion: streams.serverVersion,
      stream: config.stream.name,
      head: await streams.store.head(),
      dataDir: config.dataDir,
    },
    "foldline is up",
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    streams.close().then(
      () => process.exit(0),
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
