import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import { jetstream } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { clients, startTestBed, type TestBed } from "../test/harness/app.js";
import { artworkTraffic, artworksFromReadModel } from "../test/harness/artworks.js";
import { until } from "../test/harness/until.js";
import { createKvProjector } from "./kv-projector.js";
import { createLease } from "./lease.js";
import { openReadModelDb } from "./read-model-db.js";
import { artworkKvProjection, marketplaceBucket } from "./read-models/artwork-kv.js";

const log = pino({ level: process.env.FOLDLINE_TEST_LOG ?? "silent" });
let bed: TestBed;
let app: App;
let dir: string;
let kv: KV;

beforeAll(async () => {
  ({ app, dir } = bed = await startTestBed("foldline-kv-", (dir) => ({ PROJECTORS: "embedded", READ_MODEL_DB: join(dir, "read-models.sqlite"), PROJECTOR_LEASE_TTL_MS: "1000" })));
  kv = await new Kvm(jetstream(app.streams.nc)).open(marketplaceBucket.name);
});
afterAll(async () => {
  await bed.close();
});

const kvJson = async <T>(key: string): Promise<T | undefined> => {
  const entry = await kv.get(key);
  return entry === null || entry.operation !== "PUT" ? undefined : entry.json<T>();
};

describe("the artworks KV read model", () => {
  it("agrees with the SQLite read model on every artwork's artist, royalty split, owner and burn", async () => {
    const tally = await artworkTraffic(clients(app.url), "kv", 24);
    const head = await app.streams.store.head();
    const [sqlite] = app.projectors.filter((p) => p.status().projection === "artworks");
    expect(await sqlite?.waitFor(head, 10_000)).toBe(true);
    await until("the KV checkpoint reaches the head", async () => ((await kvJson<{ position: number }>("checkpoint.artworks"))?.position ?? 0) >= head);
    expect(tally.accepted).toBeGreaterThan(24);

    const db = openReadModelDb(join(dir, "read-models.sqlite"));
    try {
      const rows = artworksFromReadModel(db);
      expect(rows.length).toBeGreaterThanOrEqual(24);
      for (const row of rows) {
        const id = row.artwork_id;
        expect(await kvJson(`artwork.${id}.artist`), id).toMatchObject({ artistId: row.artist_id });
        expect(await kvJson(`artwork.${id}.royalty`), id).toMatchObject({ royaltySplit: JSON.parse(row.royalty_split) as unknown });
        expect(await kvJson(`artwork.${id}.owner`), id).toMatchObject({ ownerId: row.owner_id, burned: row.burned === 1n });
      }
    } finally {
      db.close();
    }
  });

  it("answers GetRoyaltyInfo from KV, reading its own writes", async () => {
    const c = clients(app.url);
    const artworkId = `roy-${randomUUID().slice(0, 8)}`;
    const minted = await c.artwork.mintArtwork({
      metadata: { commandId: randomUUID(), actor: "ann" },
      artworkId,
      artistId: "ann",
      title: "Royal",
      contentHash: "sha256:ab",
      royaltySplit: [{ recipientId: "ann", basisPoints: 1_000 }],
    });
    const first = await c.queries.getRoyaltyInfo({ artworkId, minPosition: minted.result?.position ?? 0n });
    expect(first).toMatchObject({ artworkId, artistId: "ann", royaltySplit: [{ recipientId: "ann", basisPoints: 1_000 }] });
    expect(first.position).toBeGreaterThanOrEqual(minted.result?.position ?? 0n);
    for (let i = 1; i <= 20; i++) {
      const royaltySplit = [{ recipientId: "ann", basisPoints: 1_000 - i }, { recipientId: `r${i}`, basisPoints: i }];
      const set = await c.artwork.setRoyaltySplit({ metadata: { commandId: randomUUID(), actor: "ann" }, artworkId, royaltySplit });
      const info = await c.queries.getRoyaltyInfo({ artworkId, minPosition: set.result?.position ?? 0n });
      expect(info.royaltySplit.map((s) => ({ recipientId: s.recipientId, basisPoints: s.basisPoints }))).toEqual(royaltySplit);
    }
    await expect(c.queries.getRoyaltyInfo({ artworkId: "never-minted" })).rejects.toMatchObject({ code: Code.NotFound });
    await expect(c.queries.getRoyaltyInfo({ artworkId, minPosition: 1n << 40n }, { timeoutMs: 200 })).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
    });
  });

  it("has one writer at a time: a second projector stands by until the first stops", async () => {
    const leases = await new Kvm(jetstream(app.streams.nc)).open("foldline-leases");
    const key = `kv-projector.${marketplaceBucket.name}.${artworkKvProjection.name}`;
    const second = createKvProjector({
      store: app.streams.store,
      kv,
      projection: artworkKvProjection,
      lease: createLease({ kv: leases, key, owner: "second", ttlMs: 1_000, log }),
      log,
    });
    second.start();
    await sleep(1_500);
    expect(second.status().state).toBe("standby");
    expect(app.kvProjectors[0]?.status().state).toBe("running");
    await app.kvProjectors[0]?.stop(); // releases its lease
    await until("the second takes over", () => second.status().state === "running");
    await second.stop();
  });
});
