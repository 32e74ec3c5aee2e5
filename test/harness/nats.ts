import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { loadStreamsConfig, type StreamsConfig } from "../../streams/config.js";
import { startNatsServer, type NatsServerProcess } from "../../streams/nats-server.js";

/** A nats-server of a test's own: a free loopback port, a temporary store, always stopped. */
export interface TestNats extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** Kills the server abruptly (SIGKILL). */
  kill(): Promise<void>;
  /** Starts the server again on the same port and store. */
  restart(): Promise<void>;
  /** Freezes the server (SIGSTOP) and resolves once it is stopped: its connections stay open and nothing answers. */
  pause(): Promise<void>;
  /** Lets a paused server go on (SIGCONT). */
  resume(): void;
  /** Stops the server and removes its store. */
  stop(): Promise<void>;
}

/** Starts a nats-server for one test file. Use with `await using`, or stop it in `afterAll`. */
export async function startTestNats(options: { readonly jetstream?: boolean } = {}): Promise<TestNats> {
  const root = mkdtempSync(join(tmpdir(), "foldline-test-"));
  const storeDir = join(root, "store");
  const start = (port?: number): Promise<NatsServerProcess> =>
    startNatsServer({
      storeDir,
      logFile: join(root, "nats-server.log"),
      ...(port === undefined ? {} : { port }),
      ...(options.jetstream === undefined ? {} : { jetstream: options.jetstream }),
    });
  let server = await start();
  const { port, url } = server;
  let paused = false;
  const resume = (): void => {
    if (!paused) return;
    paused = false;
    process.kill(server.pid, "SIGCONT");
  };
  const stop = async (): Promise<void> => {
    resume();
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  };
  return {
    url,
    port,
    storeDir,
    kill: () => server.kill(),
    restart: async () => {
      server = await start(port);
    },
    async pause() {
      process.kill(server.pid, "SIGSTOP");
      paused = true;
      // The signal takes effect when the kernel next schedules the server, which may answer a little before.
      while (!/^State:\s+T/m.test(readFileSync(`/proc/${server.pid}/status`, "utf8"))) await sleep(5);
    },
    resume,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** The stream layer's configuration for a test server, with environment-style overrides. */
export function testConfig(nats: { readonly url: string }, env: Record<string, string> = {}): StreamsConfig {
  return loadStreamsConfig({ NATS_URL: nats.url, NATS_TIMEOUT_MS: "2000", ...env });
}
