import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../app.js";
import { startTestBed, type Clients, type TestBed } from "../../test/harness/app.js";
import {
  artworkTraffic,
  artworksFromReadModel,
  artworksFromStream,
  ownerTraffic,
  provenanceFromReadModel,
  provenanceFromStream,
  type Tally,
} from "../../test/harness/artworks.js";
import { openWallets, walletTraffic } from "../../test/harness/wallets.js";
import { createProjector, type Projector } from "../projector.js";
import { openReadModelDb, type ReadModelDb } from "../read-model-db.js";
import { artworksProjection } from "./artworks.js";
import { commitsBetween } from "../../test/harness/commits.js";

const log = pino({ level: process.env.FOLDLINE_TEST_LOG ?? "silent" });
let bed: TestBed;
let app: App;
let c: Clients;
let dir: string;

beforeAll(async () => {
  ({ app, c, dir } = bed = await startTestBed("foldline-artworks-"));
});
afterAll(async () => {
  await bed.close();
});

/** A projector of the artworks read model on a fresh file of its own, started. */
function startProjector(file: string, batchSize?: number): { db: ReadModelDb; projector: Projector } {
  const db = openReadModelDb(join(dir, file));
  const projector = createProjector({
    store: app.streams.store,
    db,
    projection: artworksProjection,
    log,
    ...(batchSize === undefined ? {} : { batchSize }),
  });
  projector.start();
  return { db, projector };
}

/** Artwork traffic with wallet commands interleaved, which the projection must skip. Returns the highest position. */
async function mixedTraffic(prefix: string, artworks: number): Promise<{ tally: Tally; position: number }> {
  const wallets = await openWallets(c, 2, `${prefix}-w`);
  const [tally, walletPosition] = await Promise.all([artworkTraffic(c, prefix, artworks), walletTraffic(c, wallets, 30, 4)]);
  return { tally, position: Math.max(tally.position, walletPosition) };
}

describe("artworks read model", () => {
  it("holds the artworks the domain folds from the stream: owners, splits, listings, burns", async () => {
    const { db, projector } = startProjector("rows.sqlite");
    try {
      const { tally, position } = await mixedTraffic("rows", 12);
      expect(await projector.waitFor(position, 10_000)).toBe(true);

      const rows = artworksFromReadModel(db);
      expect(rows).toEqual(await artworksFromStream(app.streams.store));
      // The traffic reached every case the fold distinguishes, so that the equality above means something.
      const mine = rows.filter((r) => r.artwork_id.startsWith("rows-"));
      expect(mine).toHaveLength(12);
      expect(tally.refused).toBeGreaterThanOrEqual(20);
      expect(mine.filter((r) => r.burned === 1n)).toHaveLength(3);
      expect(mine.filter((r) => r.burned === 0n && r.listed_price_cents !== null).length).toBeGreaterThan(0);
      expect(mine.filter((r) => r.burned === 0n && r.listed_price_cents === null).length).toBeGreaterThan(0);
      expect(mine.filter((r) => r.owner_id !== r.artist_id).length).toBeGreaterThan(0);
      expect(mine.filter((r) => r.royalty_split.includes("estate")).length).toBeGreaterThan(0);

      // Artwork 1 was relisted at 2501, then transferred, which clears the listing; artwork 3 was burned listed.
      const one = mine.find((r) => r.artwork_id.startsWith("rows-1-"));
      expect(one).toMatchObject({ artist_id: "bo", owner_id: "eli", listed_price_cents: null, burned: 0n });
      expect(JSON.parse(one?.royalty_split ?? "")).toEqual([{ recipientId: "artist-bo", basisPoints: 1_000 }]);
      expect(mine.find((r) => r.artwork_id.startsWith("rows-3-"))).toMatchObject({ burned: 1n, listed_price_cents: null });
      // Artwork 4 stayed with its artist, listed at its first price; its split was replaced.
      const four = mine.find((r) => r.artwork_id.startsWith("rows-4-"));
      expect(four).toMatchObject({ artist_id: "bo", owner_id: "bo", listed_price_cents: 1_400n });
      expect(JSON.parse(four?.royalty_split ?? "")).toEqual([
        { recipientId: "estate", basisPoints: 700 },
        { recipientId: "bo", basisPoints: 304 },
      ]);
      expect(projector.status().state).toBe("running");
    } finally {
      await projector.stop();
      db.close();
    }
  });

  it("records every change of owner, the mint included, with its position, version and time", async () => {
    const { db, projector } = startProjector("provenance.sqlite");
    try {
      const { position } = await mixedTraffic("prov", 8);
      expect(await projector.waitFor(position, 10_000)).toBe(true);

      const provenance = provenanceFromReadModel(db);
      expect(provenance).toEqual(await provenanceFromStream(app.streams.store));
      const mine = provenance.filter((p) => p.artwork_id.startsWith("prov-"));
      expect(mine.filter((p) => p.from_owner_id === null)).toHaveLength(8);
      expect(mine.length).toBeGreaterThan(8 + 8); // transfers, some artworks several times
      // Each artwork's last change of owner names its owner, at its latest position or before.
      for (const artwork of artworksFromReadModel(db)) {
        const changes = provenance.filter((p) => p.artwork_id === artwork.artwork_id);
        expect(changes[0]).toMatchObject({ from_owner_id: null, to_owner_id: artwork.artist_id, version: 1n });
        expect(changes[0]?.at).toBe(artwork.minted_at);
        expect(changes.at(-1)?.to_owner_id).toBe(artwork.owner_id);
        expect(changes.at(-1)?.position).toBeLessThanOrEqual(artwork.position);
      }
    } finally {
      await projector.stop();
      db.close();
    }
  });

  it("resumes from its checkpoint after a restart and still equals the domain's fold", async () => {
    const { db, projector: first } = startProjector("restart.sqlite", 7);
    let second: Projector | undefined;
    try {
      const { position } = await mixedTraffic("again", 10);
      expect(await first.waitFor(position, 10_000)).toBe(true);
      await first.stop();
      const stoppedAt = first.status().position;

      // While no projector runs: the same artworks change hands and burn, and new ones are minted.
      const rows = (await artworksFromStream(app.streams.store)).filter((r) => r.artwork_id.startsWith("again-"));
      const [carried, more] = await Promise.all([ownerTraffic(c, rows), mixedTraffic("later", 6)]);
      const later = Math.max(carried.position, more.position);
      expect(artworksFromReadModel(db).filter((r) => r.artwork_id.startsWith("later-"))).toEqual([]);

      second = createProjector({ store: app.streams.store, db, projection: artworksProjection, log });
      second.start();
      expect(await second.waitFor(later, 10_000)).toBe(true);
      expect(second.status().commitsApplied).toBe(await commitsBetween(app.streams.store, stoppedAt, later));
      expect(artworksFromReadModel(db)).toEqual(await artworksFromStream(app.streams.store));
      expect(provenanceFromReadModel(db)).toEqual(await provenanceFromStream(app.streams.store));
      const hal = artworksFromReadModel(db).filter((r) => r.artwork_id.startsWith("again-") && r.owner_id === "hal");
      expect(hal.length).toBeGreaterThan(0);
    } finally {
      await Promise.all([first.stop(), second?.stop()]);
      db.close();
    }
  });
});
