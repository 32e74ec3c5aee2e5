import { execFileSync, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { once } from "node:events";

/** Options for {@link startNatsServer}. */
export interface NatsServerOptions {
  /** JetStream store directory; created when missing. */
  readonly storeDir: string;
  /** Client port on 127.0.0.1; omitted or 0 picks a free one. Pass the old port to restart on the same address. */
  readonly port?: number;
  /** Enable JetStream (default true). Off only to test that foldline refuses such a server. */
  readonly jetstream?: boolean;
  /** Append the server's log to this file; by default it is kept only in memory for error messages. */
  readonly logFile?: string;
  /**
   * The server writes its pid here. A server still running under the pid found there at start (left behind when
   * its parent was killed outright) is stopped first, so that two servers never share one store. That server must
   * be a leftover, never a live foldline's: callers hold the store's lock first (see `lockDataDir`).
   */
  readonly pidFile?: string;
  /**
   * Runs the server in a process group of its own (default false), out of reach of a Ctrl-C in the terminal: its
   * owner stops it once it has finished its own work, instead of the server quitting under it. A server so started
   * outlives an owner killed outright; `pidFile` lets the next start stop it.
   */
  readonly ownProcessGroup?: boolean;
  /** How long to wait for the server to report ready (default 20 s). */
  readonly readyTimeoutMs?: number;
}

/** A running nats-server child process. Disposing it stops the server. */
export interface NatsServerProcess extends AsyncDisposable {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly storeDir: string;
  /** Stops the server gracefully (SIGTERM), escalating to SIGKILL after 5 s. Safe to call twice. */
  stop(): Promise<void>;
  /** Kills the server abruptly (SIGKILL), as a crash would. */
  kill(): Promise<void>;
}

const installScript = fileURLToPath(new URL("../scripts/install-nats-server.sh", import.meta.url));
let resolvedBinary: string | undefined;

/**
 * Returns the path of a nats-server >= 2.12, the first with atomic batch publish, which appends rely on. It comes
 * from `scripts/install-nats-server.sh`: `NATS_SERVER_BIN`, the copy in the project's `.nats/` folder, `PATH`, or
 * else Debian forky's package (2.15; sid's when forky has none) fetched into `.nats/`. Debian trixie's 2.10 is
 * not taken: it lacks atomic batches and is end of life. Throws with the script's explanation of what to install
 * when no such server can be had, an older one named by `NATS_SERVER_BIN` included.
 */
export function natsServerBinary(): string {
  if (resolvedBinary !== undefined) return resolvedBinary;
  try {
    const out = execFileSync("bash", [installScript], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    resolvedBinary = out.trim().split("\n").at(-1) ?? "";
    return resolvedBinary;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? "";
    throw new Error(`no usable nats-server:\n${stderr.trim()}`, { cause: err });
  }
}

const listening = /Listening for client connections on [^\s]+:(\d+)/;
const ready = /Server is ready/;

/**
 * Starts a nats-server on 127.0.0.1 as a child process and resolves once it accepts clients.
 * Rejects, with the server's last log lines, when it exits or does not become ready in time.
 */
export async function startNatsServer(options: NatsServerOptions): Promise<NatsServerProcess> {
  mkdirSync(options.storeDir, { recursive: true });
  const args = ["-a", "127.0.0.1", "-p", String(options.port || -1), "-sd", options.storeDir, "-n", "foldline"];
  if (options.jetstream !== false) args.push("-js");
  if (options.pidFile !== undefined) {
    await stopLeftover(options.pidFile);
    args.push("-P", options.pidFile);
  }
  const child = spawn(natsServerBinary(), args, {
    stdio: ["ignore", "ignore", "pipe"],
    detached: options.ownProcessGroup === true,
  });
  const log = options.logFile === undefined ? undefined : createWriteStream(options.logFile, { flags: "a" });
  const tail: string[] = [];
  let port = 0;
  let partial = "";
  let onReady: (() => void) | undefined;

  // The server's stderr must be drained for its whole life, or it blocks once the pipe fills.
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    log?.write(chunk);
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      const m = listening.exec(line);
      if (m?.[1] !== undefined) port = Number(m[1]);
      if (ready.test(line)) onReady?.();
    }
  });
  // Never leave a server behind when this process exits, however it exits short of SIGKILL.
  const killOnExit = (): void => {
    child.kill("SIGKILL");
  };
  process.once("exit", killOnExit);
  const exited = once(child, "exit").then(() => {
    process.removeListener("exit", killOnExit);
    log?.end();
  });

  const timeoutMs = options.readyTimeoutMs ?? 20_000;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`nats-server was not ready after ${timeoutMs} ms`));
      }, timeoutMs);
      onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited during start-up (code ${child.exitCode ?? child.signalCode})`));
      });
    });
  } catch (err) {
    child.kill("SIGKILL");
    await exited;
    throw new Error(`${(err as Error).message}; its last lines:\n${tail.join("\n")}`, { cause: err });
  }
  if (child.pid === undefined || port === 0) throw new Error("nats-server started but reported no client port");

  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    await exited;
  };
  const stop = async (): Promise<void> => {
    const escalate = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await signal("SIGTERM");
    clearTimeout(escalate);
  };
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    storeDir: options.storeDir,
    stop,
    kill: () => signal("SIGKILL"),
    [Symbol.asyncDispose]: stop,
  };
}

/** Stops the nats-server whose pid `pidFile` names, if one still runs under that pid, and waits for it to exit. */
async function stopLeftover(pidFile: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, "utf8").trim());
    // Only a nats-server: the pid may have been reused by an unrelated process since.
    if (!Number.isInteger(pid) || !readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("nats-server")) return;
  } catch {
    return; // no pid file, or no such process
  }
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  process.kill(pid, "SIGTERM");
  for (let waited = 0; alive() && waited < 10_000; waited += 50) await sleep(50);
  if (alive()) process.kill(pid, "SIGKILL");
}
