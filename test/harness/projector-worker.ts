import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** A projector worker process (`npm run projector`'s program) and the messages it has logged, timed. */
export interface ProjectorWorker {
  readonly child: ChildProcess;
  readonly logs: readonly { readonly msg: string; readonly at: number }[];
  /** SIGKILL, resolved once the process is gone. */
  kill(): Promise<void>;
}

const running = new Set<ChildProcess>();

/** Starts a worker with `env` on top of this process's environment. */
export function startProjectorWorker(env: Record<string, string>): ProjectorWorker {
  const child = spawn(process.execPath, ["--import", "tsx", "projector-main.ts"], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  const logs: { msg: string; at: number }[] = [];
  let rest = "";
  child.stdout.on("data", (chunk: Buffer) => {
    const lines = (rest + chunk.toString()).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      try {
        logs.push({ msg: (JSON.parse(line) as { msg: string }).msg, at: Date.now() });
      } catch {
        // not a log line
      }
    }
  });
  return {
    child,
    logs,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Kills every worker still running (for `afterAll`). */
export function killProjectorWorkers(): void {
  for (const child of running) child.kill("SIGKILL");
}
