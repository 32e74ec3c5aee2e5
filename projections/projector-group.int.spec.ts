import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { startTestBed, type Clients, type TestBed } from "../test/harness/app.js";
import { artworkTraffic, artworksFromReadModel, artworksFromStream, provenanceFromReadModel, provenanceFromStream } from "../test/harness/artworks.js";
import { until } from "../test/harness/until.js";
import { openWallets, walletTraffic, walletsFromReadModel, walletsFromStream } from "../test/harness/wallets.js";
import { listParked } from "./parked.js";
import { createProjector, createProjectorGroup, type Projection } from "./projector.js";
import { openReadModelDb, type ReadModelDb } from "./read-model-db.js";
import { artworksProjection } from "./read-models/artworks.js";
import { walletsProjection } from "./read-models/wallets.js";
import { commitsBetween } from "../test/harness/commits.js";

const log = pino({ level: process.env.FOLDLINE_TEST_LOG ?? "silent" });
let bed: TestBed;
let app: App;
let c: Clients;
let dir: string;
let wallets: string[];

beforeAll(async () => {
  ({ app, c, dir } = bed = await startTestBed("foldline-projector-group-"));
  wallets = await openWallets(c, 6, "group");
});
afterAll(async () => {
  await bed.close();
});

/** Wallet and artwork traffic at once; returns the highest position. */
async function traffic(prefix: string, commands = 120): Promise<number> {
  const [w, a] = await Promise.all([walletTraffic(c, wallets, commands), artworkTraffic(c, prefix, 4)]);
  return Math.max(w, a.position);
}

function checkpoints(db: ReadModelDb): Record<string, number> {
  const rows = db.prepare<[], { projection: string; position: bigint }>("SELECT projection, position FROM projection_checkpoints").all();
  return Object.fromEntries(rows.map((r) => [r.projection, Number(r.position)]));
}

async function expectFolds(db: ReadModelDb): Promise<void> {
  expect(walletsFromReadModel(db)).toEqual(await walletsFromStream(app.streams.store));
  expect(artworksFromReadModel(db)).toEqual(await artworksFromStream(app.streams.store));
  expect(provenanceFromReadModel(db)).toEqual(await provenanceFromStream(app.streams.store));
}

/** The wallets projection, which throws on the commit at `poison()` after applying it while `broken()` holds. */
function walletsBrokenAt(poison: () => number, broken: () => boolean): Projection {
  return {
    name: walletsProjection.name,
    migrate: (db) => {
      walletsProjection.migrate(db);
    },
    prepare(db) {
      const apply = walletsProjection.prepare(db);
      return (commit) => {
        apply(commit);
        if (broken() && commit.seq === poison()) throw new Error(`cannot apply commit ${commit.seq}`);
      };
    },
  };
}

describe("projector group", () => {
  it("builds every read model of a file from one read, each with its own checkpoint and status", async () => {
    const last = await traffic("one");
    const db = openReadModelDb(join(dir, "one.sqlite"));
    const group = createProjectorGroup({ store: app.streams.store, db, projections: [walletsProjection, artworksProjection], log, batchSize: 64 });
    const [w, a] = group.projectors;
    group.start();
    try {
      expect(await w?.waitFor(last, 10_000)).toBe(true);
      expect(await a?.waitFor(last, 10_000)).toBe(true);
      // One consumer on the stream for both read models (beside the test app's own projectors).
      const later = await traffic("one-later", 40);
      expect(await a?.waitFor(later, 10_000)).toBe(true);
      expect(await w?.waitFor(later, 10_000)).toBe(true);
      await expectFolds(db);
      const applied = await commitsBetween(app.streams.store, 0, later);
      for (const [p, name] of [[w, "wallets"], [a, "artworks"]] as const) {
        expect(p?.status()).toMatchObject({ projection: name, state: "running", commitsApplied: applied, parked: 0 });
        expect(p?.status().batches).toBeLessThan(later); // batches, shared
      }
      expect(checkpoints(db)).toEqual({ wallets: later, artworks: later });
    } finally {
      await group.stop();
    }
    expect(group.projectors.map((p) => p.status().state)).toEqual(["stopped", "stopped"]);
    db.close();
  });

  it("gives a projection whose checkpoint is ahead only the commits after it", async () => {
    const file = join(dir, "ahead.sqlite");
    const db = openReadModelDb(file);
    // Wallets alone first, up to some position; artworks not at all.
    const first = await traffic("ahead");
    const alone = createProjector({ store: app.streams.store, db, projection: walletsProjection, log });
    alone.start();
    expect(await alone.waitFor(first, 10_000)).toBe(true);
    await alone.stop();
    const walletsAt = alone.status().position;
    const last = await traffic("ahead-later");
    const group = createProjectorGroup({ store: app.streams.store, db, projections: [walletsProjection, artworksProjection], log, batchSize: 50 });
    const [w, a] = group.projectors;
    group.start();
    try {
      expect(await w?.waitFor(last, 10_000)).toBe(true);
      expect(await a?.waitFor(last, 10_000)).toBe(true);
      expect(w?.status().commitsApplied).toBe(await commitsBetween(app.streams.store, walletsAt, last));
      expect(a?.status().commitsApplied).toBe(await commitsBetween(app.streams.store, 0, last));
      await expectFolds(db); // nothing applied twice to wallets, nothing missed by artworks
    } finally {
      await group.stop();
      db.close();
    }
  });

  it("parks a poison commit for its projection only; the others go on; fixed and started again, it catches up", async () => {
    const before = await traffic("poison");
    const poison = Number(
      (await c.wallet.deposit({ metadata: { commandId: randomUUID() }, walletId: wallets[0] ?? "", amountCents: 5n })).result?.position,
    );
    const last = await traffic("poison-later");
    let broken = true;
    const db = openReadModelDb(join(dir, "poison.sqlite"));
    const group = createProjectorGroup({
      store: app.streams.store,
      db,
      projections: [walletsBrokenAt(() => poison, () => broken), artworksProjection],
      log,
      maxAttempts: 2,
      batchSize: 40,
    });
    const [w, a] = group.projectors;
    group.start();
    try {
      expect(await a?.waitFor(last, 10_000)).toBe(true);
      await until("wallets stops on the poison commit", () => w?.status().state === "stopped-on-poison");
      // Stopped at the commit before the poison one.
      expect(w?.status()).toMatchObject({ position: before, parked: 1 });
      expect(listParked(db, "wallets")).toMatchObject([{ position: poison, attempts: 2 }]);
      // The read goes on for artworks, live commits included.
      const live = await traffic("poison-live", 30);
      expect(await a?.waitFor(live, 10_000)).toBe(true);
      expect(a?.status().state).toBe("running");
      expect(checkpoints(db).wallets).toBe(before);

      // Fixed, wallets starts again behind the read: the read starts again from its checkpoint.
      broken = false;
      w?.start();
      expect(await w?.waitFor(live, 10_000)).toBe(true);
      expect(w?.status()).toMatchObject({ state: "running", parked: 0 });
      expect(listParked(db, "wallets")).toEqual([]);
      // Artworks saw every commit once, the restart or not.
      expect(a?.status().commitsApplied).toBe(await commitsBetween(app.streams.store, 0, live));
      await expectFolds(db);
    } finally {
      await group.stop();
      db.close();
    }
  });

  it("stops and starts one projection while the others run", async () => {
    const db = openReadModelDb(join(dir, "stop-one.sqlite"));
    const group = createProjectorGroup({ store: app.streams.store, db, projections: [walletsProjection, artworksProjection], log, batchSize: 30 });
    const [w, a] = group.projectors;
    group.start();
    try {
      const first = await traffic("stop-one");
      expect(await w?.waitFor(first, 10_000)).toBe(true);
      await a?.stop();
      expect(a?.status().state).toBe("stopped");
      const stoppedAt = a?.status().position ?? 0;
      const second = await traffic("stop-one-later");
      expect(await w?.waitFor(second, 10_000)).toBe(true);
      expect(a?.status().position).toBe(stoppedAt);
      expect(checkpoints(db).artworks).toBe(stoppedAt);
      a?.start();
      expect(await a?.waitFor(second, 10_000)).toBe(true);
      const applied = await commitsBetween(app.streams.store, 0, second);
      expect(a?.status().commitsApplied).toBe(applied);
      expect(w?.status().commitsApplied).toBe(applied);
      await expectFolds(db);
    } finally {
      await group.stop();
    }
    expect(group.projectors.map((p) => p.status().state)).toEqual(["stopped", "stopped"]);
    db.close();
  });

  it("refuses two projections of one name", () => {
    const db = openReadModelDb(join(dir, "names.sqlite"));
    expect(() => createProjectorGroup({ store: app.streams.store, db, projections: [walletsProjection, walletsProjection], log })).toThrow(
      /unique/,
    );
    db.close();
  });
});
