import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, it } from "vitest";
import { startTestNats, type TestNats } from "./harness/nats.js";
import { alive, embeddedServerPid, groupMembers, startNpm, type NpmProcess } from "./harness/npm-process.js";

const root = mkdtempSync(join(tmpdir(), "foldline-stop-signals-"));
const started: NpmProcess[] = [];
let nats: TestNats;

/** Runs `npm <args>` on a data directory of its own. */
const start = (args: string[], name: string, env: Record<string, string> = {}): { p: NpmProcess; dir: string } => {
  const dir = join(root, name);
  const p = startNpm(args, { DATA_DIR: dir, API_PORT: "0", ...env });
  started.push(p);
  return { p, dir };
};

beforeAll(async () => {
  nats = await startTestNats();
});
afterAll(async () => {
  try {
    await Promise.all(started.map((p) => p.killAll()));
  } finally {
    await nats.stop();
    rmSync(root, { recursive: true, force: true });
  }
});

/** When foldline's embedded nats-server began to shut down, as its log says (its times are local). */
const serverShutdownAt = (dir: string): number => {
  const log = readFileSync(join(dir, "nats-server.log"), "utf8");
  const m = /(\d{4})\/(\d\d)\/(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{3})\d* \[INF\] Initiating Shutdown/.exec(log);
  if (m === null) return Number.NaN;
  const [y, mo, d, h, mi, sec, ms] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
  return new Date(y, mo - 1, d, h, mi, sec, ms).getTime();
};

/** The time of foldline's first log line `msg`. */
const loggedAt = (p: NpmProcess, msg: string): number => Number(p.logs.find((l) => l.msg === msg)?.time ?? Number.NaN);

describe.concurrent("stopping what the user started", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`npm start stops gracefully, its nats-server with it, on ${signal} to the npm process`, async ({ expect }) => {
      const { p, dir } = start(["start"], `start-${signal}`);
      await p.waitForLog("foldline is up");
      const server = embeddedServerPid(dir);
      p.signal(signal);
      const exit = await p.exitWithin(20_000);
      expect(exit, `how npm start ended within 20 s of ${signal}`).toEqual({ code: 0, signal: null });
      expect(p.logs.map((l) => l.msg)).toContain("stopped");
      expect(alive(server)).toBe(false);
      // Stopped by foldline, once it had drained its API server.
      expect(serverShutdownAt(dir)).toBeGreaterThanOrEqual(loggedAt(p, "api server closed"));
      expect(groupMembers(p.child.pid ?? 0)).toEqual([]);
    });
  }

  it("npm start stops gracefully on Ctrl-C pressed twice, the second while stopping", async ({ expect }) => {
    const { p, dir } = start(["start"], "start-ctrl-c");
    await p.waitForLog("foldline is up");
    const server = embeddedServerPid(dir);
    p.signalGroup("SIGINT");
    // Ctrl-C again, inside the shutdown (which lasts at least until the nats-server has exited), until foldline
    // says it heard it: on a busy machine a second signal sent while the first is still pending is merged with it
    // by the kernel, so one more press is not enough to be sure that one arrives on its own.
    for (let pressed = 0; pressed < 100 && !p.logs.some((l) => l.msg === "already stopping"); pressed++) {
      await sleep(10);
      if (p.child.exitCode !== null || p.child.signalCode !== null) break;
      p.signalGroup("SIGINT");
    }
    const exit = await p.exitWithin(20_000);
    expect(exit, "how npm start ended within 20 s of Ctrl-C").toEqual({ code: 0, signal: null });
    const messages = p.logs.map((l) => l.msg);
    expect(messages).toContain("already stopping");
    expect(messages).toContain("stopped");
    expect(alive(server)).toBe(false);
    // The terminal's SIGINT reaches foldline only: its nats-server is stopped by foldline, after the drain.
    expect(serverShutdownAt(dir)).toBeGreaterThanOrEqual(loggedAt(p, "api server closed"));
    expect(groupMembers(p.child.pid ?? 0)).toEqual([]);
  });

  it("npm run projector stops gracefully on SIGTERM to the npm process", async ({ expect }) => {
    const { p } = start(["run", "projector"], "projector", { NATS_URL: nats.url });
    await p.waitForLog("projecting");
    p.signal("SIGTERM");
    const exit = await p.exitWithin(20_000);
    expect(exit, "how npm run projector ended within 20 s of SIGTERM").toEqual({ code: 0, signal: null });
    expect(p.logs.map((l) => l.msg)).toContain("stopped");
    expect(groupMembers(p.child.pid ?? 0)).toEqual([]);
  });
});
