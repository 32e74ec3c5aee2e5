import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { leasesBucket } from "../streams/topology.js";
import { startTestBed, type TestBed } from "./harness/app.js";
import { groupMembers, startNpm, type NpmProcess } from "./harness/npm-process.js";

let bed: TestBed;
const started: NpmProcess[] = [];

beforeAll(async () => {
  bed = await startTestBed("foldline-projector-start-");
});
afterAll(async () => {
  await Promise.all(started.map((p) => p.killAll()));
  await bed.close();
});

describe("a projector worker that cannot open its read-model file", () => {
  it("exits non-zero holding no lease, so that a standby can take over at once", async () => {
    // A directory where the file should be: SQLite cannot open it (SQLITE_CANTOPEN), whoever runs the test.
    const database = join(bed.dir, "not-a-file");
    mkdirSync(database);
    const worker = startNpm(["run", "projector"], { NATS_URL: bed.nats.url, DATA_DIR: bed.dir, READ_MODEL_DB: database });
    started.push(worker);
    const exit = await worker.exitWithin(15_000);
    expect(exit, "the worker still runs 15 s after failing to start").toBeDefined();
    expect(exit?.code).not.toBe(0);
    const fatal = worker.logs.find((l) => l.level >= 50);
    expect(fatal?.msg).toBe("projector could not start");
    expect(JSON.stringify(fatal?.err)).toContain("SQLITE_CANTOPEN");
    expect(groupMembers(worker.child.pid ?? 0)).toEqual([]);

    // Neither the KV projector's lease nor the purchase process manager's is held.
    const leases = await new Kvm(jetstream(bed.app.streams.nc)).open(leasesBucket);
    for (const key of ["kv-projector.marketplace.artworks", "reactor.purchases"]) {
      const entry = await leases.get(key);
      expect(entry === null || entry.operation !== "PUT", `lease ${key} is held: ${entry?.string()}`).toBe(true);
    }
  });
});
