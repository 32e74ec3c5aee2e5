import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { alive, embeddedServerPid, groupMembers, startNpm, type NpmProcess } from "./harness/npm-process.js";

let dir: string;
let taken: Server;
let port: number;
const started: NpmProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "foldline-start-failure-"));
  // Another program holds the API port.
  taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  port = (taken.address() as { port: number }).port;
});
afterAll(async () => {
  await Promise.all(started.map((p) => p.killAll()));
  await new Promise((resolve) => taken.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

describe("npm start when start-up fails after NATS is up", () => {
  it("stops what it started and exits non-zero at once, with one line saying why", async () => {
    const foldline = startNpm(["start"], { DATA_DIR: dir, API_PORT: String(port) });
    started.push(foldline);
    const exit = await foldline.exitWithin(20_000);
    expect(exit, "npm start still running 20 s after it could not listen").toBeDefined();
    expect(exit?.code).not.toBe(0);

    // One line at warning level or above: the reason, naming the port.
    const complaints = foldline.logs.filter((l) => l.level >= 40);
    expect(complaints.map((l) => l.msg)).toEqual(["foldline could not start"]);
    expect(JSON.stringify(complaints[0]?.err)).toContain(`EADDRINUSE`);
    expect(JSON.stringify(complaints[0]?.err)).toContain(`127.0.0.1:${port}`);

    // Nothing it started is left: neither its nats-server nor any process of its own.
    const server = embeddedServerPid(dir);
    expect(server).toBeGreaterThan(0);
    expect(alive(server)).toBe(false);
    expect(groupMembers(foldline.child.pid ?? 0)).toEqual([]);
  });
});
