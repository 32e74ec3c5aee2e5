import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { decodeArtworkEvent } from "../commands/marketplace/artwork-events.js";
import { artworkDecider } from "../domain/artwork/decider.js";
import type { ArtworkState } from "../domain/artwork/types.js";
import { AdminService } from "../gen/foldline/admin/v1/admin_service_pb.js";
import { PurchaseState } from "../gen/foldline/marketplace/v1/query_service_pb.js";
import { openReadModelDb } from "../projections/read-model-db.js";
import type { PurchaseRow, RoyaltyEarningsRow, SaleRow } from "../projections/read-models/sales.js";
import { clients, startTestBed, type Clients, type TestBed } from "./harness/app.js";
import { type TestNats } from "./harness/nats.js";
import { killProjectorWorkers, startProjectorWorker, type ProjectorWorker } from "./harness/projector-worker.js";
import { marketplaceFromStream, startStepByStep, type Marketplace } from "./harness/purchases.js";
import { until } from "./harness/until.js";
import { walletsFromReadModel, walletsFromStream } from "./harness/wallets.js";

let bed: TestBed;
let nats: TestNats;
let app: App;
let dir: string;

beforeAll(async () => {
  // Queries read the file the worker writes.
  ({ nats, app, dir } = bed = await startTestBed("foldline-purchases-", (dir) => ({ READ_MODEL_DB: join(dir, "read-models.sqlite") })));
});
afterAll(async () => {
  killProjectorWorkers();
  await bed.close();
});

const price = 1_000n;
const meta = (actor = "") => ({ commandId: randomUUID(), actor });

/** The purchase process runs in the projector worker (the app runs none with PROJECTORS=separate). */
const startWorker = (database: string): ProjectorWorker =>
  startProjectorWorker({
    NATS_URL: nats.url,
    DATA_DIR: dir,
    READ_MODEL_DB: database,
    // A killed worker's lease is taken over soon.
    PROJECTOR_LEASE_TTL_MS: "1000",
  });

/** Mints `count` artworks by distinct artists, each with a royalty split, and lists them at `price`. */
async function mintAndList(c: Clients, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const artworkId = `art-${i}`;
    const artistId = `artist-${i}`;
    // Splits that do not divide the price evenly, one naming the artist too.
    const royaltySplit = [
      { recipientId: `curator-${i % 2}`, basisPoints: 333 + i },
      { recipientId: i === 0 ? artistId : "foundation", basisPoints: 1_250 },
    ];
    await c.artwork.mintArtwork({ metadata: meta(), artworkId, artistId, title: `work ${i}`, contentHash: "sha256:00", royaltySplit });
    await c.artwork.listForSale({ metadata: meta(artistId), artworkId, priceCents: price, payoutWalletId: artistId });
    ids.push(artworkId);
  }
  return ids;
}

/** Relists every artwork that is not listed (sold, or delisted by the test) at `price`, by its owner, until `stop`. */
async function keepListed(app: App, c: Clients, artworks: readonly string[], stop: AbortSignal): Promise<number> {
  let relisted = 0;
  while (!stop.aborted) {
    for (const artworkId of artworks) {
      let state: ArtworkState = artworkDecider.initialState;
      for (const commit of await app.streams.store.readAggregate(`ev.artwork.${artworkId}`)) {
        for (const record of commit.events) state = artworkDecider.evolve(state, decodeArtworkEvent(record));
      }
      if (state.status !== "Active" || state.listing !== null) continue;
      try {
        await c.artwork.listForSale({ metadata: meta(state.ownerId), artworkId, priceCents: price, payoutWalletId: state.ownerId });
        relisted++;
      } catch {
        // Sold again between the read and the listing: the next round lists it for its new owner.
      }
    }
    await sleep(15);
  }
  return relisted;
}

const terminal = (m: Marketplace, ids: readonly string[]): number =>
  ids.filter((id) => {
    const s = m.purchases.get(id)?.status;
    return s === "Completed" || s === "Failed";
  }).length;

describe("the purchase process manager, on purchases started step by step", () => {
  it("runs 200 concurrent purchases of 4 artworks through worker kills: one owner each, money conserved, royalties paid once", async () => {
    const c = clients(app.url);
    const database = join(dir, "read-models.sqlite");
    const artworks = await mintAndList(c, 4);
    // 40 buyers: most can pay several times over, some once, some never.
    const buyers = Array.from({ length: 40 }, (_, i) => ({ buyerId: `buyer-${i}`, walletId: `wallet-${i}` }));
    for (const [i, b] of buyers.entries()) {
      await c.wallet.openWallet({ metadata: meta(), walletId: b.walletId, ownerId: b.buyerId });
      const amountCents = i % 8 === 0 ? 300n : i % 8 === 1 ? 1_200n : 5_000n;
      await c.wallet.deposit({ metadata: meta(), walletId: b.walletId, amountCents });
    }

    let worker = startWorker(database);
    const stopListing = new AbortController();
    const listing = keepListed(app, c, artworks, stopListing.signal);
    // Every 10th purchase offers a price the artwork is not listed at: it must be compensated.
    const purchases = Array.from({ length: 200 }, (_, i) => {
      const b = buyers[i % buyers.length] ?? { buyerId: "", walletId: "" };
      const offered = i % 10 === 9 ? price - 1n : price;
      return { purchaseId: `purchase-${i}`, artworkId: artworks[i % artworks.length] ?? "", ...b, priceCents: offered };
    });
    const ids = purchases.map((p) => p.purchaseId);
    // Commits the process manager has written: its progress, read incrementally.
    let processCommits = 0;
    let seen = 0;
    const processProgress = async (): Promise<number> => {
      for await (const commit of app.streams.store.readAll({ fromSeq: seen + 1 })) {
        seen = commit.seq;
        if (commit.metadata.actor === "purchase-process") processCommits++;
      }
      return processCommits;
    };

    // In 20 waves of 10, so that artworks are sold, relisted and sold again while purchases compete for them.
    // After waves 5, 10 and 15 the worker (and with it the process manager) is killed at a random moment once
    // it is at work on them, and a new one started.
    const answers = [];
    const kills: number[] = [];
    for (let wave = 0; wave < 20; wave++) {
      const sent = purchases.slice(wave * 10, wave * 10 + 10).map((p) =>
        startStepByStep(app.pipeline, {
          purchaseId: p.purchaseId,
          artworkId: p.artworkId,
          buyerId: p.buyerId,
          buyerWalletId: p.walletId,
          priceCents: p.priceCents,
        }),
      );
      answers.push(...(await Promise.all(sent)));
      if (wave % 5 === 4 && wave < 19) {
        const from = await processProgress();
        await until("the process manager to work on the wave", async () => (await processProgress()) >= from + 5, 30_000);
        await sleep(Math.floor(Math.random() * 100));
        await worker.kill();
        kills.push(terminal(await marketplaceFromStream(app.streams.store), ids));
        worker = startWorker(database);
      } else {
        await sleep(100);
      }
    }
    expect(answers.every((a) => a.events[0]?.type === "PurchaseStarted")).toBe(true);
    let m = await marketplaceFromStream(app.streams.store);
    await until("every purchase to end", async () => terminal((m = await marketplaceFromStream(app.streams.store)), ids) === ids.length, 90_000);
    stopListing.abort();
    await listing;
    m = await marketplaceFromStream(app.streams.store);
    // The kills landed while purchases were under way.
    expect(kills).toHaveLength(3);
    for (const [k, ended] of kills.entries()) expect(ended).toBeLessThan((k + 1) * 50);

    const completed = ids.filter((id) => m.purchases.get(id)?.status === "Completed");
    const failed = ids.filter((id) => m.purchases.get(id)?.status === "Failed");
    expect(completed.length).toBeGreaterThanOrEqual(8);
    expect(failed.length).toBeGreaterThan(10);

    // Every artwork has one owner, handed on sale by sale: each seller is the previous buyer.
    for (const artworkId of artworks) {
      const state = m.artworks.get(artworkId);
      if (state?.status !== "Active") throw new Error(`artwork ${artworkId} is ${state?.status ?? "missing"}`);
      const sales = m.sales.filter((s) => s.artworkId === artworkId);
      let owner = `artist-${artworkId.slice("art-".length)}`;
      for (const sale of sales) {
        expect(sale.sellerId).toBe(owner);
        owner = sale.buyerId;
      }
      expect(state.ownerId).toBe(owner);
    }

    // Each completed purchase has exactly one sale and each sale's payouts were paid exactly once; failed ones
    // sold nothing and paid no one.
    expect(m.sales.map((s) => s.purchaseId).sort()).toEqual([...completed].sort());
    for (const sale of m.sales) {
      const paid = m.payments.filter((p) => p.purchaseId === sale.purchaseId);
      const expected = sale.payouts.map((p) => ({ walletId: p.recipientId, amountCents: p.amountCents, kind: p.kind }));
      const got = paid.map((p) => ({ walletId: p.walletId, amountCents: p.amountCents, kind: p.kind }));
      const order = (a: { walletId: string; kind: string }, b: { walletId: string; kind: string }) =>
        `${a.walletId}/${a.kind}`.localeCompare(`${b.walletId}/${b.kind}`);
      expect(got.sort(order)).toEqual(expected.sort(order));
      expect(sale.payouts.reduce((sum, p) => sum + p.amountCents, 0n)).toBe(sale.priceCents);
      expect(sale.payouts.some((p) => p.kind === "Royalty")).toBe(true);
    }
    for (const id of failed) expect(m.payments.filter((p) => p.purchaseId === id)).toEqual([]);

    // No wallet is negative, nothing stays reserved, no room stays made for a payment, and money is conserved.
    let total = 0n;
    for (const [walletId, w] of m.wallets) {
      if (w.status !== "Open") throw new Error(`wallet ${walletId} is not open`);
      expect(w.balanceCents).toBeGreaterThanOrEqual(0n);
      expect(w.reservedCents).toBe(0n);
      expect(w.expectedCents ?? 0n, `payments ${walletId} still expects`).toBe(0n);
      total += w.balanceCents;
    }
    expect(total).toBe(m.deposited - m.withdrawn);

    // The read models say the same, once the worker has caught up.
    const head = await app.streams.store.head();
    const db = openReadModelDb(database);
    try {
      await until(
        "the read models to catch up",
        () => Number(db.prepare<[], { p: bigint }>("SELECT min(position) AS p FROM projection_checkpoints").get()?.p ?? 0n) >= head,
        30_000,
      );
      expect(walletsFromReadModel(db)).toEqual(await walletsFromStream(app.streams.store));
      const sales = db.prepare<[], SaleRow>("SELECT * FROM sales ORDER BY position").all();
      expect(sales.map((s) => s.purchase_id)).toEqual(m.sales.map((s) => s.purchaseId));
      const rows = db.prepare<[], PurchaseRow>("SELECT * FROM purchases").all();
      expect(rows.filter((r) => r.stage === "Completed").length).toBe(completed.length);
      expect(rows.filter((r) => r.stage === "Failed").length).toBe(failed.length);
      const earned = new Map<string, bigint>();
      for (const p of m.payments) if (p.kind === "Royalty") earned.set(p.walletId, (earned.get(p.walletId) ?? 0n) + p.amountCents);
      const earnings = db.prepare<[], RoyaltyEarningsRow>("SELECT * FROM royalty_earnings").all();
      expect(new Map(earnings.map((r) => [r.recipient_id, r.amount_cents]))).toEqual(earned);
      // KV agrees with SQLite on every artwork's owner and royalty split.
      const kv = await new Kvm(jetstream(app.streams.nc)).open("marketplace");
      const kvJson = async <T>(key: string): Promise<T | undefined> => (await kv.get(key))?.json<T>();
      await until("the KV read model to catch up", async () => ((await kvJson<{ position: number }>("checkpoint.artworks"))?.position ?? 0) >= head);
      for (const row of db.prepare<[], { artwork_id: string; owner_id: string; royalty_split: string }>("SELECT * FROM artworks").all()) {
        expect(await kvJson(`artwork.${row.artwork_id}.owner`)).toMatchObject({ ownerId: row.owner_id, burned: false });
        expect(await kvJson(`artwork.${row.artwork_id}.royalty`)).toMatchObject({ royaltySplit: JSON.parse(row.royalty_split) as unknown });
      }
    } finally {
      db.close();
    }

    // Rebuilding the read models replays every purchase's events into them, and not one command: the stream is
    // left as it was, and the rebuilt read models equal the live ones.
    const admin = createClient(AdminService, createGrpcTransport({ baseUrl: app.url }));
    for (const projection of ["sales", "wallets"]) {
      const rebuilt = await admin.rebuildProjection({ projection });
      expect(rebuilt.position).toBe(BigInt(head));
      expect((await admin.diffProjection({ projection })).identical).toBe(true);
    }
    await sleep(500);
    expect(await app.streams.store.head()).toBe(head);

    // And the queries answer from them.
    const one = completed[0] ?? "";
    const { purchase } = await c.queries.getPurchase({ purchaseId: one, minPosition: BigInt(head) });
    expect(purchase?.state).toBe(PurchaseState.COMPLETED);
    const failure = await c.queries.getPurchase({ purchaseId: failed[0] ?? "" });
    expect(failure.purchase?.state).toBe(PurchaseState.FAILED);
    expect(failure.purchase?.reason).not.toBe("");
    await worker.kill();
  }, 180_000);
});
