import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { clients } from "./harness/app.js";
import { alive, embeddedServerPid, startNpm, type NpmProcess } from "./harness/npm-process.js";

let dir: string;
const started: NpmProcess[] = [];
const start = (): NpmProcess => {
  const p = startNpm(["start"], { DATA_DIR: dir, API_PORT: "0" });
  started.push(p);
  return p;
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "foldline-second-start-"));
});
afterAll(async () => {
  await Promise.all(started.map((p) => p.killAll()));
  rmSync(dir, { recursive: true, force: true });
});

describe("a second npm start in the same data directory", () => {
  it("refuses at once naming the running one and leaves it serving; after a kill -9 a start takes over", async () => {
    const first = start();
    const up = await first.waitForLog("foldline is up");
    const server = embeddedServerPid(dir);
    expect(alive(server)).toBe(true);

    const second = start();
    const exit = await second.exitWithin(10_000);
    expect(exit, "the second npm start still runs after 10 s").toBeDefined();
    expect(exit?.code).not.toBe(0);
    const refusal = second.logs.find((l) => l.level >= 50);
    expect(refusal?.msg).toBe("foldline could not start");
    expect(JSON.stringify(refusal?.err)).toContain(`process ${up.pid}`);

    // The first one is untouched: the same nats-server, still serving.
    expect(embeddedServerPid(dir)).toBe(server);
    expect(alive(server)).toBe(true);
    const health = await clients(String(up.api)).health.check({});
    expect(health.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect(first.logs.filter((l) => l.level >= 40)).toEqual([]);

    // Killed outright, the first leaves its lock and its nats-server behind: neither blocks the next start.
    process.kill(up.pid, "SIGKILL");
    await first.exitWithin(10_000);
    const third = start();
    const restarted = await third.waitForLog("foldline is up");
    expect(alive(server)).toBe(false);
    expect(embeddedServerPid(dir)).not.toBe(server);
    const again = await clients(String(restarted.api)).health.check({});
    expect(again.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });
});
