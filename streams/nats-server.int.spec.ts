import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startNatsServer } from "./nats-server.js";

const root = mkdtempSync(join(tmpdir(), "foldline-embedded-"));
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

const running = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("embedded nats-server", () => {
  it("stops a server left behind on the same store before starting another", async () => {
    const options = { storeDir: join(root, "store"), pidFile: join(root, "nats-server.pid") };
    // The first server is never stopped by its owner, as when foldline itself is killed outright.
    const leftover = await startNatsServer(options);
    const next = await startNatsServer(options);
    try {
      expect(running(leftover.pid)).toBe(false);
      expect(running(next.pid)).toBe(true);
    } finally {
      await next.stop();
      await leftover.stop();
    }
  });
});
