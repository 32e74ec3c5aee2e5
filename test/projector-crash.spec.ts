import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { AdminService } from "../gen/foldline/admin/v1/admin_service_pb.js";
import { openReadModelDb } from "../projections/read-model-db.js";
import { clients, startTestBed, type TestBed } from "./harness/app.js";
import { type TestNats } from "./harness/nats.js";
import { killProjectorWorkers, startProjectorWorker, type ProjectorWorker } from "./harness/projector-worker.js";
import { artworkTraffic, artworksFromReadModel, artworksFromStream, provenanceFromReadModel, provenanceFromStream } from "./harness/artworks.js";
import { until } from "./harness/until.js";
import { openWallets, walletTraffic, walletsFromReadModel, walletsFromStream } from "./harness/wallets.js";

let bed: TestBed;
let nats: TestNats;
let app: App;
let dir: string;

beforeAll(async () => {
  ({ nats, app, dir } = bed = await startTestBed("foldline-projector-crash-"));
});
afterAll(async () => {
  killProjectorWorkers();
  await bed.close();
});

/** Wallet operations sent (a reservation and its release or settlement are two commands, counted as one). */
const walletOperations = 20_000;

/** Starts `npm run projector`'s program as a process of its own, on `database`. */
const startWorker = (database: string): ProjectorWorker =>
  startProjectorWorker({
    NATS_URL: nats.url,
    DATA_DIR: dir,
    READ_MODEL_DB: database,
    PROJECTOR_BATCH_SIZE: "40",
    // A killed worker's lease is taken over after a second, not ten: the restarts come quickly.
    PROJECTOR_LEASE_TTL_MS: "1000",
  });

describe("a projector worker killed outright", () => {
  it(
    `applies every commit exactly once to every read model across repeated kills during ${walletOperations} operations`,
    async () => {
      const database = join(dir, "read-models.sqlite");
      const c = clients(app.url);
      const wallets = await openWallets(c, 64, "crash");
      const db = openReadModelDb(database); // a reader beside the worker, as queries will be
      // The lowest checkpoint of the worker's projectors.
      const checkpoint = (): number =>
        Number(db.prepare<[], { position: bigint | null }>("SELECT min(position) AS position FROM projection_checkpoints").get()?.position ?? 0n);
      let worker = startWorker(database);
      const flow = { done: false };
      const traffic = walletTraffic(c, wallets, walletOperations, 64).finally(() => {
        flow.done = true;
      });
      const artworks = artworkTraffic(c, "crash", 120);
      const killedAt: number[] = [];
      let killsDuringTraffic = 0;
      // Kill it while it works, again and again until the traffic is over: each time once it has committed a batch
      // since it started, at a random moment after.
      while (!flow.done || killedAt.length < 5) {
        const from = checkpoint();
        const head = await app.streams.store.head();
        // Once the traffic is over, a worker that has caught up makes no more progress: it is killed all the same.
        await until("the worker makes progress", () => checkpoint() > from || (flow.done && checkpoint() >= head), 60_000);
        await sleep(Math.floor(Math.random() * 1500));
        if (!flow.done) killsDuringTraffic++;
        await worker.kill();
        killedAt.push(checkpoint());
        worker = startWorker(database);
      }
      const highest = await traffic;
      await artworks;
      const head = await app.streams.store.head();
      expect(highest).toBeGreaterThan(walletOperations);
      // At least 5 kills landed while commands were still flowing, each after the worker had moved on.
      expect(killsDuringTraffic).toBeGreaterThanOrEqual(5);
      expect(new Set(killedAt.slice(0, killsDuringTraffic)).size).toBe(killsDuringTraffic);
      try {
        await until(`the worker catches up with ${head}`, () => checkpoint() >= head, 120_000);

        // Every read model equals a fresh rebuild, as the worker itself checks it (AdminService, forwarded over NATS).
        const admin = createClient(AdminService, createGrpcTransport({ baseUrl: app.url }));
        // The last worker started may still be waiting for the lease of the one killed before it.
        await until(
          "the worker answers admin requests",
          () => admin.getProjectionStatus({}).then(() => true, () => false),
          60_000,
        );
        const { projections } = await admin.getProjectionStatus({});
        const sqlite = projections.filter((p) => p.kind === "sqlite");
        expect(sqlite.map((p) => p.projection)).toEqual(expect.arrayContaining(["wallets", "artworks"]));
        for (const { projection } of sqlite) {
          const diff = await admin.diffProjection({ projection });
          expect({ projection, differences: diff.differences, tables: diff.tables.filter((t) => t.onlyInLive + t.onlyInRebuilt > 0n) }).toEqual({
            projection,
            differences: 0n,
            tables: [],
          });
          expect(diff.identical).toBe(true);
          expect(diff.position).toBeGreaterThanOrEqual(BigInt(head));
        }

        // And equals the aggregates' own state, folded by the domain.
        expect(walletsFromReadModel(db)).toEqual(await walletsFromStream(app.streams.store));
        expect(artworksFromReadModel(db)).toEqual(await artworksFromStream(app.streams.store));
        expect(provenanceFromReadModel(db)).toEqual(await provenanceFromStream(app.streams.store));
      } finally {
        db.close();
        await worker.kill();
      }
    },
    600_000,
  );
});
