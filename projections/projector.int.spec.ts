import { randomUUID } from "node:crypto";
import { join } from "node:path";
import Database from "better-sqlite3";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { clients, startTestApp, startTestBed, type Clients, type TestBed } from "../test/harness/app.js";
import { type TestNats } from "../test/harness/nats.js";
import { until } from "../test/harness/until.js";
import { openWallets, walletTraffic, walletsFromReadModel, walletsFromStream } from "../test/harness/wallets.js";
import { decodeCommit } from "../streams/commit-codec.js";
import type { EventStore, StoredCommit } from "../streams/event-store.js";
import { listParked } from "./parked.js";
import { createProjector, type PoisonPolicy, type Projection } from "./projector.js";
import { openReadModelDb } from "./read-model-db.js";
import { walletsProjection } from "./read-models/wallets.js";
import { commitsBetween, lastCommitBefore } from "../test/harness/commits.js";

const log = pino({ level: process.env.FOLDLINE_TEST_LOG ?? "silent" });
let bed: TestBed;
let nats: TestNats;
let app: App;
let c: Clients;
let dir: string;

beforeAll(async () => {
  ({ nats, app, c, dir } = bed = await startTestBed("foldline-projector-"));
});
afterAll(async () => {
  await bed.close();
});

describe("projector", () => {
  it("folds the stream into the wallets read model, resumes from its checkpoint, and equals the aggregates", async () => {
    const file = join(dir, "resume.sqlite");
    const wallets = await openWallets(c, 12, "pr");
    const db = openReadModelDb(file);
    const first = createProjector({ store: app.streams.store, db, projection: walletsProjection, log, batchSize: 50 });
    first.start();
    const position = await walletTraffic(c, wallets, 600);
    expect(await first.waitFor(position, 10_000)).toBe(true);
    expect(walletsFromReadModel(db)).toEqual(await walletsFromStream(app.streams.store));
    await first.stop();
    const appliedFirst = first.status().commitsApplied;
    expect(first.status().batches).toBeLessThan(appliedFirst); // commits were applied in batches

    // More commands while no projector runs; a new one picks up exactly where the first stopped.
    const later = await walletTraffic(c, wallets, 300);
    const second = createProjector({ store: app.streams.store, db, projection: walletsProjection, log });
    second.start();
    expect(await second.waitFor(later, 10_000)).toBe(true);
    expect(second.status().commitsApplied).toBe(await commitsBetween(app.streams.store, first.status().position, later));
    expect(walletsFromReadModel(db)).toEqual(await walletsFromStream(app.streams.store));
    await second.stop();
    db.close();
  });

  it("runs embedded in the foldline process when PROJECTORS=embedded, and stops with it", async () => {
    const file = join(dir, "embedded.sqlite");
    const embedded = await startTestApp(nats, { PROJECTORS: "embedded", READ_MODEL_DB: file });
    try {
      const [projector] = embedded.projectors;
      expect(projector?.status().state).toBe("running");
      const ec = clients(embedded.url);
      const position = await walletTraffic(ec, await openWallets(ec, 3, "emb"), 60);
      expect(await projector?.waitFor(position, 10_000)).toBe(true);
    } finally {
      await embedded.close();
    }
    expect(embedded.projectors[0]?.status().state).toBe("stopped");
    const db = openReadModelDb(file);
    expect(walletsFromReadModel(db)).toEqual(await walletsFromStream(app.streams.store));
    db.close();
  });

  it("stops a second projector of the same read model before it applies anything twice", async () => {
    const file = join(dir, "two.sqlite");
    const wallets = await openWallets(c, 4, "two");
    const one = createProjector({ store: app.streams.store, db: openReadModelDb(file), projection: walletsProjection, log });
    const other = createProjector({ store: app.streams.store, db: openReadModelDb(file), projection: walletsProjection, log });
    one.start();
    other.start();
    const position = await walletTraffic(c, wallets, 200);
    await until("one of the two fails", () => [one, other].some((p) => p.status().state === "failed"));
    const failed = [one, other].find((p) => p.status().state === "failed");
    const survivor = [one, other].find((p) => p.status().state === "running");
    expect(await survivor?.waitFor(position, 5_000)).toBe(true);
    expect(failed?.status().error).toMatch(/another projector writes this read model/);
    const check = openReadModelDb(file);
    expect(walletsFromReadModel(check)).toEqual(await walletsFromStream(app.streams.store));
    await Promise.all([one.stop(), other.stop()]);
    check.close();
  });

  it("retries a failing batch, then stops at the last good checkpoint with the error in its status", async () => {
    const wallets = await openWallets(c, 1, "poison");
    const before = await walletTraffic(c, wallets, 5, 1);
    const poison = (await c.wallet.deposit({ metadata: { commandId: randomUUID() }, walletId: wallets[0] ?? "", amountCents: 666n })).result?.position;
    let attempts = 0;
    const failing: Projection = {
      name: "failing",
      migrate: () => undefined,
      prepare: () => (commit) => {
        if (BigInt(commit.seq) === poison) {
          attempts++;
          throw new Error(`cannot apply commit ${commit.seq}`);
        }
      },
    };
    const db = openReadModelDb(join(dir, "poison.sqlite"));
    const projector = createProjector({ store: app.streams.store, db, projection: failing, log, maxAttempts: 3, batchSize: 1 });
    projector.start();
    await until("the projector stops", () => projector.status().state !== "running");
    expect(attempts).toBe(3);
    const status = projector.status();
    expect(status.state).toBe("stopped-on-poison"); // the default policy parks it and stops in front of it
    expect(status.position).toBeGreaterThanOrEqual(before);
    expect(status.position).toBe(before); // the last commit before the poison one
    expect(status.error).toMatch(new RegExp(`cannot apply commit ${poison}`));
    await projector.stop();
    db.close();
  });
});

describe("projector, given a commit its projection cannot apply", () => {
  it("with onPoison 'skip': parks it, applies every other commit exactly once, and goes on", async () => {
    const wallets = await openWallets(c, 4, "skip");
    const target = wallets[0] ?? "";
    await walletTraffic(c, wallets, 80);
    const poison = await deposit(target, 666n);
    const last = await walletTraffic(c, wallets, 80); // more commits of the target wallet among them
    const poisoned = walletsFailingAt(poison, "skip");
    const db = openReadModelDb(join(dir, "skip.sqlite"));
    // The whole stream in one batch: the poison commit sits in its middle.
    const store = inOneBurst(app.streams.store);
    const projector = createProjector({ store, db, projection: poisoned, log, maxAttempts: 2, batchSize: 1_000_000 });
    projector.start();
    expect(await projector.waitFor(last, 10_000)).toBe(true);

    // Tried twice in the batch, twice alone; the commits before it one per transaction, those after in one.
    expect(poisoned.calls()).toBe(4);
    const status = projector.status();
    const upToPoison = await commitsBetween(app.streams.store, 0, poison);
    const applied = (await commitsBetween(app.streams.store, 0, last)) - 1;
    expect(status).toMatchObject({ state: "running", position: last, parked: 1, commitsApplied: applied, batches: upToPoison });
    expect(status.error).toBeUndefined();
    // The read model is the stream without the poison commit: no trace of its partial writes, nothing twice.
    const expected = (await walletsFromStream(app.streams.store)).map((w) =>
      w.wallet_id === target ? { ...w, balance_cents: w.balance_cents - 666n } : w,
    );
    expect(walletsFromReadModel(db)).toEqual(expected);

    const stored = await app.streams.store.readCommit(poison);
    const [row, ...more] = listParked(db, "wallets");
    expect(more).toEqual([]);
    expect(row).toMatchObject({
      projection: "wallets",
      position: poison,
      subject: `ev.wallet.${target}`,
      eventTypes: stored?.events.map((e) => e.type),
      error: `cannot apply commit ${poison}`,
      attempts: 2,
    });
    expect(row?.eventTypes[0]).toMatch(/FundsDeposited$/);
    expect(row === undefined ? undefined : decodeCommit(row.commitBytes).metadata.commandId).toBe(stored?.metadata.commandId);

    // Live commits after it are applied as they come.
    const later = await deposit(target, 1n);
    expect(await projector.waitFor(later, 10_000)).toBe(true);
    expect(projector.status()).toMatchObject({ state: "running", parked: 1, commitsApplied: (await commitsBetween(app.streams.store, 0, later)) - 1 });
    await projector.stop();
    db.close();
  });

  it("with onPoison 'stop': parks it, stops in front of it, and a restart of the fixed projection applies it", async () => {
    const wallets = await openWallets(c, 3, "stop");
    const target = wallets[0] ?? "";
    await walletTraffic(c, wallets, 60);
    const poison = await deposit(target, 777n);
    const last = await walletTraffic(c, wallets, 60);
    const beforePoison = await lastCommitBefore(app.streams.store, poison);
    const db = openReadModelDb(join(dir, "stop.sqlite"));
    const broken = createProjector({
      store: app.streams.store,
      db,
      projection: walletsFailingAt(poison, "stop"),
      log,
      maxAttempts: 2,
    });
    broken.start();
    await until("the broken projector stops", () => broken.status().state !== "running");
    const stopped = broken.status();
    expect(stopped).toMatchObject({ state: "stopped-on-poison", position: beforePoison, parked: 1, head: last });
    expect(stopped.lag).toBe(last - beforePoison);
    expect(stopped.error).toBe(`commit ${poison} on ev.wallet.${target} is parked: cannot apply commit ${poison}`);
    expect(listParked(db, "wallets")).toMatchObject([{ position: poison, subject: `ev.wallet.${target}`, attempts: 2 }]);

    // Started again, still broken: it stops at the same place, and the same row counts the attempts.
    broken.start();
    expect(broken.status().state).toBe("running");
    await until("the broken projector stops", () => broken.status().state !== "running");
    expect(broken.status()).toMatchObject({ state: "stopped-on-poison", position: beforePoison, parked: 1 });
    expect(listParked(db, "wallets")).toMatchObject([{ position: poison, attempts: 4 }]);

    // Fixed: a new projector applies it and everything after it, and it is no longer parked.
    const fixed = createProjector({ store: app.streams.store, db, projection: walletsProjection, log });
    expect(fixed.status()).toMatchObject({ state: "stopped", position: beforePoison, parked: 1 });
    fixed.start();
    expect(await fixed.waitFor(last, 10_000)).toBe(true);
    expect(walletsFromReadModel(db)).toEqual(await walletsFromStream(app.streams.store));
    expect(fixed.status()).toMatchObject({ state: "running", position: last, commitsApplied: await commitsBetween(app.streams.store, beforePoison, last), parked: 0 });
    expect(listParked(db, "wallets")).toEqual([]);
    await fixed.stop();
    await broken.stop();
    db.close();
  });

  it("never parks a commit for a failing database: it retries at its checkpoint, even with onPoison 'skip'", async () => {
    const wallets = await openWallets(c, 2, "full");
    await walletTraffic(c, wallets, 20);
    const poison = await deposit(wallets[0] ?? "", 5n);
    const last = await walletTraffic(c, wallets, 20);
    const db = openReadModelDb(join(dir, "full.sqlite"));
    const diskFull = walletsFailingAt(poison, "skip", () => new Database.SqliteError("database or disk is full", "SQLITE_FULL"));
    const projector = createProjector({ store: app.streams.store, db, projection: diskFull, log, maxAttempts: 2, maxRetryDelayMs: 50 });
    projector.start();
    await until("the projector retries", () => projector.status().state === "retrying");
    // It keeps trying the same commit, never moving past it.
    await until("several more attempts", () => diskFull.calls() >= 6);
    const status = projector.status();
    expect(status).toMatchObject({ state: "retrying", parked: 0 });
    expect(status.position).toBeLessThan(poison);
    expect(status.error).toMatch(/disk is full/);
    expect(listParked(db, "wallets")).toEqual([]);
    expect(await projector.waitFor(last, 100)).toBe(false);
    await projector.stop();
    expect(projector.status().state).toBe("stopped");
    db.close();
  });

  it("retries at its checkpoint while the database is full and resumes by itself once it has room", async () => {
    const db = openReadModelDb(join(dir, "room.sqlite"));
    const projector = createProjector({ store: app.streams.store, db, projection: walletsProjection, log, maxAttempts: 2, maxRetryDelayMs: 200 });
    projector.start();
    const before = await deposit((await openWallets(c, 1, "room"))[0] ?? "", 5n);
    expect(await projector.waitFor(before, 10_000)).toBe(true);
    // SQLite's own limit on the file's size: from now on a write that needs a new page fails with SQLITE_FULL.
    db.pragma(`max_page_count = ${String(db.pragma("page_count", { simple: true }))}`);
    const wallets = await openWallets(c, 200, "room");
    const last = await walletTraffic(c, wallets, 200);
    await until("the projector retries", () => projector.status().state === "retrying");
    const stuck = projector.status();
    expect(stuck.error).toMatch(/full/);
    expect(stuck.position).toBeLessThan(last);
    expect(stuck.parked).toBe(0);
    // Room again: it resumes without a restart and applies every commit exactly once.
    db.pragma("max_page_count = 1073741823");
    expect(await projector.waitFor(last, 5_000)).toBe(true);
    expect(projector.status()).toMatchObject({ state: "running", parked: 0 });
    const inStream = new Map((await walletsFromStream(app.streams.store)).map((w) => [w.wallet_id, w]));
    for (const row of walletsFromReadModel(db)) expect(row).toEqual(inStream.get(row.wallet_id));
    await projector.stop();
    db.close();
  });
});

describe("projector status", () => {
  it("reports the stream's head, a lag that reaches 0 once caught up, and commits per second while traffic flows", async () => {
    const wallets = await openWallets(c, 8, "rate");
    const db = openReadModelDb(join(dir, "rate.sqlite"));
    const projector = createProjector({ store: app.streams.store, db, projection: walletsProjection, log });
    expect(projector.status()).toMatchObject({ state: "stopped", head: 0, lag: 0, commitsPerSecond: 0, parked: 0 });
    projector.start();
    let sampling = true as boolean; // cleared outside the sampler's loop
    let busiest = 0;
    let highestHead = 0;
    const sampler = (async () => {
      while (sampling) {
        const s = projector.status();
        busiest = Math.max(busiest, s.commitsPerSecond);
        highestHead = Math.max(highestHead, s.head);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const last = await walletTraffic(c, wallets, 800, 8);
    sampling = false;
    await sampler;
    expect(busiest).toBeGreaterThan(0);
    expect(highestHead).toBeGreaterThan(0);
    expect(await projector.waitFor(last, 10_000)).toBe(true);
    await until("the status shows the head", () => projector.status().head === last);
    const status = projector.status();
    expect(status).toMatchObject({ state: "running", position: last, head: last, lag: 0 });
    // Never more than what it applied, over at least a second.
    expect(status.commitsPerSecond).toBeGreaterThan(0);
    expect(status.commitsPerSecond).toBeLessThanOrEqual(status.commitsApplied);
    await projector.stop();
    db.close();
  });
});

describe("a projector whose read stops delivering", () => {
  it("shows stalled while it is behind the head with nothing applied, and running again once commits flow", async () => {
    const wallets = await openWallets(c, 2, "stall");
    const db = openReadModelDb(join(dir, "stall.sqlite"));
    let delivering = false;
    const store = heldBack(app.streams.store, () => delivering);
    const projector = createProjector({ store, db, projection: walletsProjection, log, stallAfterMs: 500 });
    projector.start();
    const last = await walletTraffic(c, wallets, 20);
    await until("it shows stalled", () => projector.status().state === "stalled", 10_000);
    const stalled = projector.status();
    expect(stalled.lag).toBeGreaterThan(0);
    expect(stalled.error).toMatch(/no commit applied for \d+ s while \d+ behind/);
    delivering = true;
    expect(await projector.waitFor(last, 5_000)).toBe(true);
    await until("the status shows the head", () => projector.status().head >= last);
    expect(projector.status()).toMatchObject({ state: "running", lag: 0 });
    expect(projector.status().error).toBeUndefined();
    await projector.stop();
    db.close();
  });
});

/** `store`, whose batches are held back while `delivering()` is false, as a consumer that stopped delivering. */
function heldBack(store: EventStore, delivering: () => boolean): EventStore {
  return {
    ...store,
    async *followBatches(options = {}) {
      for await (const batch of store.followBatches(options)) {
        while (!delivering()) {
          if (options.signal?.aborted === true) return;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        yield batch;
      }
    },
  };
}

/** Deposits `amountCents` to `walletId`; returns the commit's position. */
async function deposit(walletId: string, amountCents: bigint): Promise<number> {
  const res = await c.wallet.deposit({ metadata: { commandId: randomUUID() }, walletId, amountCents });
  return Number(res.result?.position ?? 0n);
}

/**
 * The wallets projection, with `onPoison`, that throws on the commit at `poison` after applying it: whatever it
 * wrote must be rolled back. `calls()` counts the tries at that commit.
 */
function walletsFailingAt(
  poison: number,
  onPoison: PoisonPolicy,
  error = (): Error => new Error(`cannot apply commit ${poison}`),
): Projection & { calls(): number } {
  let calls = 0;
  return {
    name: walletsProjection.name,
    onPoison,
    migrate: (db) => {
      walletsProjection.migrate(db);
    },
    prepare(db) {
      const apply = walletsProjection.prepare(db);
      return (commit) => {
        apply(commit);
        if (commit.seq === poison) {
          calls++;
          throw error();
        }
      };
    },
    calls: () => calls,
  };
}

/** `store`, whose batches begin with what the stream holds, all at once (one batch), then follow it as usual. */
function inOneBurst(store: EventStore): EventStore {
  return {
    ...store,
    async *followBatches(options = {}) {
      const held: StoredCommit[] = [];
      for await (const commit of store.readAll({ fromSeq: options.fromSeq ?? 1 })) held.push(commit);
      if (held.length > 0) yield held;
      const next = (held[held.length - 1]?.seq ?? (options.fromSeq ?? 1) - 1) + 1;
      yield* store.followBatches({ ...options, fromSeq: next });
    },
  };
}
