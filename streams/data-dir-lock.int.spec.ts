import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { DataDirInUseError, lockDataDir } from "./data-dir-lock.js";

const dir = mkdtempSync(join(tmpdir(), "foldline-lock-"));
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

const lockModule = fileURLToPath(new URL("./data-dir-lock.ts", import.meta.url));

/** A process of its own that tries to take the lock, prints "held" or "refused <pid>", and holds it until killed. */
function contender(): { child: ChildProcess; answer: Promise<string> } {
  const code = `
    const { lockDataDir } = await import(${JSON.stringify(lockModule)});
    try { lockDataDir(${JSON.stringify(dir)}); console.log("held"); setInterval(() => {}, 1000); }
    catch (err) { console.log("refused " + err.holderPid); }`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.add(child);
  const answer = once(child.stdout as NodeJS.ReadableStream, "data").then(([chunk]) => String(chunk).trim());
  return { child, answer };
}

describe("the data directory's lock", () => {
  it("goes to exactly one of several processes starting at once, and to the next once its holder is killed", async () => {
    const racers = Array.from({ length: 6 }, contender);
    const answers = await Promise.all(racers.map((r) => r.answer));
    const winner = racers[answers.indexOf("held")];
    expect(answers.filter((a) => a === "held")).toHaveLength(1);
    // Each refusal names the winner (or no one, in the instant between its taking the lock and writing its pid).
    for (const answer of answers.filter((a) => a !== "held")) {
      expect([`refused ${winner?.child.pid}`, "refused undefined"]).toContain(answer);
    }

    // In this process too, while the winner lives.
    expect(() => lockDataDir(dir)).toThrow(DataDirInUseError);
    winner?.child.kill("SIGKILL");
    if (winner !== undefined) await once(winner.child, "exit");
    const lock = lockDataDir(dir);
    lock.release();
    lock.release();
    expect(await contender().answer).toBe("held");
  });
});
