import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { openReadModelDb } from "../projections/read-model-db.js";
import { clients, startTestApp } from "./harness/app.js";
import { startTestNats, type TestNats } from "./harness/nats.js";
import { killProjectorWorkers, startProjectorWorker, type ProjectorWorker } from "./harness/projector-worker.js";
import { artworkTraffic, artworksFromReadModel, artworksFromStream, provenanceFromReadModel, provenanceFromStream } from "./harness/artworks.js";
import { openWallets, walletTraffic, walletsFromReadModel, walletsFromStream } from "./harness/wallets.js";

let nats: TestNats;
let app: App;
let dir: string;

beforeAll(async () => {
  nats = await startTestNats();
  app = await startTestApp(nats);
  dir = mkdtempSync(join(tmpdir(), "foldline-projector-crash-"));
});
afterAll(async () => {
  killProjectorWorkers();
  await app.close();
  await nats.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts `npm run projector`'s program as a process of its own, on `database`. */
const startWorker = (database: string): ProjectorWorker =>
  startProjectorWorker({ NATS_URL: nats.url, DATA_DIR: dir, READ_MODEL_DB: database, PROJECTOR_BATCH_SIZE: "40" });

describe("a projector worker killed outright", () => {
  it("applies every commit exactly once to every read model across 5 kills and restarts", async () => {
    const database = join(dir, "read-models.sqlite");
    const c = clients(app.url);
    const wallets = await openWallets(c, 24, "crash");
    const db = openReadModelDb(database); // a reader beside the worker, as queries will be
    // The lowest checkpoint of the worker's projectors (wallets and artworks).
    const checkpoint = (): number =>
      Number(db.prepare<[], { position: bigint | null }>("SELECT min(position) AS position FROM projection_checkpoints").get()?.position ?? 0n);
    let worker = startWorker(database);
    // Commands flow until the last kill, however fast the worker catches up between kills.
    let killing = true as boolean; // widened: the kills below end it
    const traffic = (async () => {
      let highest = await walletTraffic(c, wallets, 3_000);
      while (killing) highest = Math.max(highest, await walletTraffic(c, wallets, 200));
      return highest;
    })();
    const artworks = artworkTraffic(c, "crash", 60);
    const killedAt: number[] = [];
    for (let kills = 0; kills < 5; kills++) {
      // Kill it while it works: once it has committed a batch since it started, at a random moment after.
      const from = checkpoint();
      const deadline = Date.now() + 20_000;
      while (checkpoint() === from) {
        if (Date.now() > deadline) throw new Error("the worker made no progress");
        await sleep(10);
      }
      await sleep(Math.floor(Math.random() * 150));
      await worker.kill();
      killedAt.push(checkpoint());
      worker = startWorker(database);
    }
    killing = false;
    const highest = await traffic;
    await artworks;
    const head = await app.streams.store.head();
    expect(highest).toBeGreaterThan(0);

    // Every kill landed while commands were still flowing, each after the worker had moved on.
    expect(killedAt[killedAt.length - 1]).toBeLessThan(head);
    expect(new Set(killedAt).size).toBe(killedAt.length);
    try {
      const deadline = Date.now() + 30_000;
      while (checkpoint() < head) {
        if (Date.now() > deadline) throw new Error(`the worker did not catch up with ${head}`);
        await sleep(50);
      }
      expect(walletsFromReadModel(db)).toEqual(await walletsFromStream(app.streams.store));
      expect(artworksFromReadModel(db)).toEqual(await artworksFromStream(app.streams.store));
      expect(provenanceFromReadModel(db)).toEqual(await provenanceFromStream(app.streams.store));
    } finally {
      db.close();
      await worker.kill();
    }
  });
});
