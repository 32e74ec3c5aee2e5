import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** A JSON log line a foldline process wrote on stdout, with the time it was read. */
export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly pid: number;
  readonly at: number;
  readonly [field: string]: unknown;
}

/** How a process ended. */
export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/**
 * A command of the README (`npm start`, `npm run projector`) run as a user runs it: npm is the process the user
 * started, in a process group of its own as a terminal's foreground job is.
 */
export interface NpmProcess {
  /** The npm process. */
  readonly child: ChildProcess;
  /** The log lines read so far. */
  readonly logs: readonly LogLine[];
  /** Everything written on stderr so far. */
  stderr(): string;
  /** Resolves when npm exits. */
  readonly exited: Promise<Exit>;
  /** Resolves with the first log line whose `msg` is `msg`; throws after `timeoutMs` (default 30 s) or if npm exits first. */
  waitForLog(msg: string, timeoutMs?: number): Promise<LogLine>;
  /** How npm ended, or undefined when it is still running after `timeoutMs`. */
  exitWithin(timeoutMs: number): Promise<Exit | undefined>;
  /** Sends `signal` to the npm process alone (`kill -TERM <pid>`). */
  signal(signal: NodeJS.Signals): void;
  /** Sends `signal` to the whole process group, as a terminal does on Ctrl-C. */
  signalGroup(signal: NodeJS.Signals): void;
  /** SIGKILL to the process group and to the nats-server its DATA_DIR names, if any; resolves once npm is gone. */
  killAll(): Promise<void>;
}

/** Whether a process runs under `pid` (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The pid of the nats-server an `npm start` with `dataDir` started, as its pid file names it (0 when none). */
export function embeddedServerPid(dataDir: string): number {
  try {
    return Number(readFileSync(join(dataDir, "nats-server.pid"), "utf8").trim()) || 0;
  } catch {
    return 0;
  }
}

/** The pids of the processes in process group `pgid`. */
export function groupMembers(pgid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z" && Number(fields[2]) === pgid) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Runs `npm <args>` in the repository with `env` on top of this process's environment. */
export function startNpm(args: readonly string[], env: Record<string, string>): NpmProcess {
  const child = spawn("npm", args, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const exited = new Promise<Exit>((resolve) => {
    child.once("exit", (code, signal) => {
      resolve({ code, signal });
    });
  });
  const logs: LogLine[] = [];
  let stderr = "";
  let rest = "";
  child.stdout.on("data", (chunk: Buffer) => {
    const lines = (rest + chunk.toString()).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.startsWith("{")) continue; // npm's own lines
      try {
        logs.push({ ...(JSON.parse(line) as LogLine), at: Date.now() });
      } catch {
        // not a log line
      }
    }
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const pgid = child.pid ?? 0;
  const ended = (): boolean => child.exitCode !== null || child.signalCode !== null;

  return {
    child,
    logs,
    stderr: () => stderr,
    exited,
    async waitForLog(msg, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = logs.find((l) => l.msg === msg);
        if (line !== undefined) return line;
        if (ended()) throw new Error(`npm ${args.join(" ")} exited before logging "${msg}":\n${stderr}`);
        if (Date.now() > deadline) throw new Error(`npm ${args.join(" ")} did not log "${msg}" in ${timeoutMs} ms`);
        await sleep(20);
      }
    },
    exitWithin: (timeoutMs) => Promise.race([exited, sleep(timeoutMs).then(() => undefined)]),
    signal(signal) {
      child.kill(signal);
    },
    signalGroup(signal) {
      process.kill(-pgid, signal);
    },
    async killAll() {
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {
        // the group is gone
      }
      const dataDir = env.DATA_DIR;
      const server = dataDir === undefined ? 0 : embeddedServerPid(dataDir);
      if (server !== 0 && alive(server) && readFileSync(`/proc/${server}/cmdline`, "utf8").includes(dataDir ?? "")) {
        process.kill(server, "SIGKILL");
      }
      if (!ended()) await exited;
    },
  };
}

/**
 * `npm start` as an API server on the nats-server at `natsUrl`, projectors elsewhere, in `dataDir`; resolves
 * once it is up, with its API's URL. The process is added to `started` before it comes up, so that a spec's
 * teardown stops it even when it never does.
 */
export async function startApiServer(
  natsUrl: string,
  dataDir: string,
  started: NpmProcess[],
): Promise<{ readonly server: NpmProcess; readonly api: string }> {
  const server = startNpm(["start"], { NATS_URL: natsUrl, PROJECTORS: "separate", DATA_DIR: dataDir, API_PORT: "0" });
  started.push(server);
  const up = await server.waitForLog("foldline is up");
  return { server, api: String(up.api) };
}
