import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { openReadModelDb } from "../projections/read-model-db.js";
import { clients, startTestBed, type TestBed } from "./harness/app.js";
import { type TestNats } from "./harness/nats.js";
import { until } from "./harness/until.js";
import { killProjectorWorkers, startProjectorWorker, type ProjectorWorker } from "./harness/projector-worker.js";
import { openWallets, walletTraffic, walletsFromReadModel, walletsFromStream } from "./harness/wallets.js";

const ttlMs = 1_000;
let bed: TestBed;
let nats: TestNats;
let app: App;
let dir: string;

beforeAll(async () => {
  ({ nats, app, dir } = bed = await startTestBed("foldline-lease-"));
});
afterAll(async () => {
  killProjectorWorkers();
  await bed.close();
});

const startWorker = (database: string): ProjectorWorker =>
  startProjectorWorker({ NATS_URL: nats.url, DATA_DIR: dir, READ_MODEL_DB: database, PROJECTOR_LEASE_TTL_MS: String(ttlMs) });

describe("projector workers sharing a read-model file", () => {
  it("elect one writer; a standby takes over when the writer is killed", async () => {
    const database = join(dir, "shared.sqlite");
    const c = clients(app.url);
    const wallets = await openWallets(c, 8, "lease");
    const first = startWorker(database);
    await until("the first worker projects", () => first.logs.some((l) => l.msg === "projecting"));
    const second = startWorker(database);
    await until("the second worker stands by", () => second.logs.some((l) => l.msg === "standing by for the projector lease"));

    const traffic = walletTraffic(c, wallets, 1_500);
    await sleep(500);
    expect(second.logs.some((l) => l.msg === "projecting")).toBe(false); // a standby, not a second writer
    await first.kill();
    const killedAt = Date.now();
    await until("the standby takes over", () => second.logs.some((l) => l.msg === "projecting"));
    const tookOver = second.logs.find((l) => l.msg === "projecting")?.at ?? 0;
    // It waited for the lease to go stale: a whole ttl after the last renewal, which came at most a third of a
    // ttl before the kill.
    expect(tookOver - killedAt).toBeGreaterThanOrEqual(ttlMs / 2);
    await traffic;

    const head = await app.streams.store.head();
    const db = openReadModelDb(database);
    try {
      const checkpoint = (): number =>
        Number(db.prepare<[], { position: bigint | null }>("SELECT min(position) AS position FROM projection_checkpoints").get()?.position ?? 0n);
      await until("the standby catches up", () => checkpoint() >= head);
      expect(walletsFromReadModel(db)).toEqual(await walletsFromStream(app.streams.store));
    } finally {
      db.close();
      second.child.kill("SIGTERM");
    }
  });
});
