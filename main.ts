// `npm start`: runs foldline on its embedded default (or on the NATS servers named by NATS_URL) until SIGINT, SIGTERM
// or SIGHUP, then stops gracefully. A failure to start stops what was started and exits with 1.
import { pino } from "pino";
import { startApp, type App } from "./app.js";
import { loadCommandsConfig, type CommandsConfig } from "./commands/config.js";
import { loadProjectionsConfig, type ProjectionsConfig } from "./projections/config.js";
import { firstStopSignal, runMain } from "./process-lifecycle.js";
import { lockDataDir, type DataDirLock } from "./streams/data-dir-lock.js";
import { loadStreamsConfig, type StreamsConfig } from "./streams/config.js";

const log = pino({ name: "foldline" });
const stopRequested = firstStopSignal(log, "stopping: finishing the commands in flight");

interface Config {
  readonly streams: StreamsConfig;
  readonly commands: CommandsConfig;
  readonly projections: ProjectionsConfig;
}

function loadConfig(): Config {
  const streams = loadStreamsConfig();
  return { streams, commands: loadCommandsConfig(), projections: loadProjectionsConfig(streams.dataDir) };
}

/**
 * The lock of DATA_DIR when this process keeps state there: the embedded nats-server's store, or the read models
 * of its own projectors. Without either (NATS_URL set, PROJECTORS=separate) several may share the folder.
 */
function lockWhatIsOurs(config: Config): DataDirLock | undefined {
  const ownsDataDir = config.streams.natsUrl === undefined || config.projections.embedded;
  return ownsDataDir ? lockDataDir(config.streams.dataDir) : undefined;
}

async function logUp(app: App, config: Config): Promise<void> {
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
}

/** Starts, runs until a stop signal, stops; answers the exit code. Throws only when it could not start. */
async function main(): Promise<number> {
  const config = loadConfig();
  // Before anything else: a second foldline on this folder must not touch the first one's server or files.
  const lock = lockWhatIsOurs(config);
  let app: App;
  try {
    app = await startApp(config, log);
    await logUp(app, config).catch(async (err: unknown) => {
      await app.close();
      throw err;
    });
  } catch (err) {
    lock?.release();
    throw err;
  }
  await stopRequested;
  try {
    await app.close();
  } catch (err) {
    log.error({ err }, "stop failed");
    return 1;
  } finally {
    // Only now: the embedded server has stopped, so the next start cannot meet it still running.
    lock?.release();
  }
  log.info("stopped");
  return 0;
}

runMain(log, main, "foldline could not start");
