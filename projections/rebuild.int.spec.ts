import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { startTestBed, type Clients, type TestBed } from "../test/harness/app.js";
import { openWallets, walletTraffic, walletsFromReadModel, walletsFromStream } from "../test/harness/wallets.js";
import { ProjectionBusy, RebuildFailed, UnknownProjection } from "./errors.js";
import { createProjectionHost, type ProjectionHost } from "./projection-host.js";
import { createProjector, type Projection } from "./projector.js";
import { openReadModelDb, type ReadModelDb } from "./read-model-db.js";
import { artworksProjection } from "./read-models/artworks.js";
import { walletsProjection } from "./read-models/wallets.js";
import { rebuildProjection, scratchFileOf } from "./rebuild.js";

const log = pino({ level: process.env.FOLDLINE_TEST_LOG ?? "silent" });
let bed: TestBed;
let app: App;
let c: Clients;
let dir: string;
let wallets: string[];

beforeAll(async () => {
  ({ app, c, dir } = bed = await startTestBed("foldline-rebuild-"));
  wallets = await openWallets(c, 10, "rb");
  await walletTraffic(c, wallets, 400);
});
afterAll(async () => {
  await bed.close();
});

/** A host on a file of its own, caught up with the stream. */
async function caughtUpHost(name: string, projections: readonly Projection[]): Promise<{ host: ProjectionHost; db: ReadModelDb; file: string }> {
  const file = join(dir, `${name}.sqlite`);
  const db = openReadModelDb(file);
  const host = createProjectionHost({ store: app.streams.store, file, db, projections, log, batchSize: 50, rebuildBatchSize: 100 });
  host.start();
  const head = await app.streams.store.head();
  for (const p of projections) expect(await host.waitFor(p.name, head, 20_000)).toBe(true);
  return { host, db, file };
}

const checkpointOf = (db: ReadModelDb, projection: string): number =>
  Number(db.prepare<[string], { position: bigint }>("SELECT position FROM projection_checkpoints WHERE projection = ?").get(projection)?.position ?? 0n);

/** The files of the directory that belong to `file` (the file, its WAL, scratch copies). */
const filesOf = (file: string): string[] => readdirSync(dir).filter((f) => f.startsWith(file.slice(dir.length + 1)));

describe("rebuild", () => {
  it("switches a rebuilt read model in while commands flow, and its projector goes on from there", async () => {
    const { host, db, file } = await caughtUpHost("switch", [walletsProjection, artworksProjection]);
    try {
      // A row changed behind the projector's back: the rebuild puts it right.
      const [victim] = wallets;
      db.prepare("UPDATE wallets SET balance_cents = balance_cents + 1000 WHERE wallet_id = ?").run(victim);
      const traffic = walletTraffic(c, wallets, 300);
      const report = await host.rebuild("wallets");
      expect(report.projection).toBe("wallets");
      expect(report.tables.map((t) => t.table)).toEqual(["wallets", "wallet_reservations"]);
      expect(report.tables[0]?.rows).toBe(wallets.length);
      expect(report.position).toBeGreaterThan(0);
      expect(checkpointOf(db, "wallets")).toBeGreaterThanOrEqual(report.position);
      expect(existsSync(scratchFileOf(file, "wallets"))).toBe(false);

      const last = await traffic;
      expect(await host.waitFor("wallets", last, 20_000)).toBe(true);
      expect(walletsFromReadModel(db)).toEqual(await walletsFromStream(app.streams.store));
      const status = await host.status();
      expect(status.map((s) => [s.projection, s.state])).toEqual([
        ["wallets", "running"],
        ["artworks", "running"],
      ]);
      expect(filesOf(file).filter((f) => f.includes("scratch"))).toEqual([]);
    } finally {
      await host.stop();
      db.close();
    }
  });

  it("picks up a changed schema: columns and indexes come from the new version of the projection", async () => {
    const v1 = commitsPerWallet("CREATE TABLE IF NOT EXISTS wallet_commits (wallet_id TEXT PRIMARY KEY, commits INTEGER NOT NULL) STRICT;");
    const v2 = commitsPerWallet(`
      CREATE TABLE IF NOT EXISTS wallet_commits (
        wallet_id TEXT PRIMARY KEY, commits INTEGER NOT NULL, kind TEXT NOT NULL DEFAULT 'wallet'
      ) STRICT;
      CREATE INDEX IF NOT EXISTS wallet_commits_by_commits ON wallet_commits (commits);`);
    const first = await caughtUpHost("schema", [v1]);
    await first.host.stop();
    first.db.close();
    const { host, db } = await caughtUpHost("schema", [v2]);
    try {
      const before = await host.diff("wallet_commits");
      expect(before.identical).toBe(false);
      expect(before.tables[0]?.schemaDiffers).toBe(true);

      await host.rebuild("wallet_commits");
      const columns = db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('wallet_commits')").all();
      expect(columns.map((col) => col.name)).toEqual(["wallet_id", "commits", "kind"]);
      const indexes = db.prepare<[], { name: string }>("SELECT name FROM pragma_index_list('wallet_commits') WHERE origin = 'c'").all();
      expect(indexes.map((i) => i.name)).toEqual(["wallet_commits_by_commits"]);
      expect((await host.diff("wallet_commits")).identical).toBe(true);
    } finally {
      await host.stop();
      db.close();
    }
  });

  it("leaves the live read model untouched and removes the scratch file when the rebuild fails", async () => {
    const head = await app.streams.store.head();
    // Applies fine in the live file; in the scratch file it throws on a commit in the middle of the stream.
    const flaky: Projection = {
      ...walletsProjection,
      prepare(db) {
        const apply = walletsProjection.prepare(db);
        return (commit) => {
          if (db.name.includes(".scratch-") && commit.seq === Math.floor(head / 2)) throw new Error("cannot apply this one");
          apply(commit);
        };
      },
    };
    const { host, db, file } = await caughtUpHost("failing", [flaky]);
    try {
      const before = walletsFromReadModel(db);
      const checkpoint = checkpointOf(db, "wallets");
      await expect(host.rebuild("wallets")).rejects.toBeInstanceOf(RebuildFailed);
      expect(walletsFromReadModel(db)).toEqual(before);
      expect(checkpointOf(db, "wallets")).toBe(checkpoint);
      expect(db.prepare("SELECT * FROM parked_commits").all()).toEqual([]);
      expect(existsSync(scratchFileOf(file, "wallets"))).toBe(false);
      expect(filesOf(file).filter((f) => f.includes("scratch"))).toEqual([]);
      // Never paused: a failure while building leaves the live projector running.
      expect((await host.status())[0]?.state).toBe("running");
      const last = await walletTraffic(c, wallets, 50);
      expect(await host.waitFor("wallets", last, 20_000)).toBe(true);
    } finally {
      await host.stop();
      db.close();
    }
  });

  it("removes the scratch file and resumes the live projector when cancelled", async () => {
    const { host, db, file } = await caughtUpHost("cancel", [walletsProjection]);
    await host.stop(); // the rebuild below drives a projector of its own
    try {
      const before = walletsFromReadModel(db);
      const abort = new AbortController();
      let resumed = 0;
      const progress = { phase: "building" as const, position: 0 };
      const rebuilding = rebuildProjection({
        store: app.streams.store,
        projection: walletsProjection,
        live: {
          file,
          db,
          pause: () => Promise.resolve(checkpointOf(db, "wallets")),
          resume: () => {
            resumed++;
          },
        },
        log,
        batchSize: 10,
        closeEnough: -1, // never close enough: it builds until cancelled
        signal: abort.signal,
        progress,
      });
      while (progress.position === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(existsSync(scratchFileOf(file, "wallets"))).toBe(true);
      abort.abort(new Error("cancelled by the test"));
      await expect(rebuilding).rejects.toBeInstanceOf(RebuildFailed);
      expect(walletsFromReadModel(db)).toEqual(before);
      expect(resumed).toBe(0); // never paused
      expect(filesOf(file).filter((f) => f.includes("scratch"))).toEqual([]);
    } finally {
      db.close();
    }
  }, 30_000);

  it("carries the commits parked by a projection that skips them over to the switched-in read model", async () => {
    // The first commit from position 5 on (positions count command records too).
    let poison = 0;
    for await (const commit of app.streams.store.readAll({ fromSeq: 5 })) {
      poison = commit.seq;
      break;
    }
    const skipping: Projection = {
      ...walletsProjection,
      onPoison: "skip",
      prepare(db) {
        const apply = walletsProjection.prepare(db);
        return (commit) => {
          if (commit.seq === poison) throw new Error("cannot apply this one");
          apply(commit);
        };
      },
    };
    const { host, db } = await caughtUpHost("parked", [skipping]);
    try {
      const parked = (): { position: bigint; error: string }[] =>
        db.prepare<[], { position: bigint; error: string }>("SELECT position, error FROM parked_commits WHERE projection = 'wallets'").all();
      expect(parked()).toEqual([{ position: BigInt(poison), error: "cannot apply this one" }]);
      db.prepare("DELETE FROM parked_commits").run(); // lost: the rebuild finds it again
      const report = await host.rebuild("wallets");
      expect(parked()).toEqual([{ position: BigInt(poison), error: "cannot apply this one" }]);
      expect(checkpointOf(db, "wallets")).toBeGreaterThanOrEqual(report.position);
      expect((await host.status())[0]).toMatchObject({ state: "running", parked: 1 });
    } finally {
      await host.stop();
      db.close();
    }
  }, 60_000);

  it("refuses an unknown projection and a second rebuild of the same one", async () => {
    const { host, db } = await caughtUpHost("busy", [walletsProjection]);
    try {
      await expect(host.rebuild("nope")).rejects.toBeInstanceOf(UnknownProjection);
      const first = host.rebuild("wallets");
      await expect(host.rebuild("wallets")).rejects.toBeInstanceOf(ProjectionBusy);
      await expect(host.diff("wallets")).rejects.toBeInstanceOf(ProjectionBusy);
      await first;
      expect((await host.diff("wallets")).identical).toBe(true);
    } finally {
      await host.stop();
      db.close();
    }
  });
});

describe("diff", () => {
  it("finds a row changed behind the projector's back, a missing row and an extra row, and nothing else", async () => {
    const { host, db } = await caughtUpHost("diff", [walletsProjection]);
    try {
      expect((await host.diff("wallets")).identical).toBe(true);
      const [changed = "", missing = ""] = wallets;
      db.prepare("UPDATE wallets SET balance_cents = balance_cents + 7 WHERE wallet_id = ?").run(changed);
      db.prepare("DELETE FROM wallets WHERE wallet_id = ?").run(missing);
      db.prepare(
        "INSERT INTO wallets (wallet_id, owner_id, balance_cents, reserved_cents, version, position) VALUES ('ghost', 'nobody', 1, 0, 1, 1)",
      ).run();
      const traffic = walletTraffic(c, wallets.slice(2), 100); // the diff compares at one position while commands flow

      const report = await host.diff("wallets", { maxRowsPerTable: 10 });
      expect(report.identical).toBe(false);
      const table = report.tables.find((t) => t.table === "wallets");
      expect(table).toMatchObject({ liveRows: wallets.length, rebuiltRows: wallets.length, onlyInLive: 2, onlyInRebuilt: 2 });
      expect(report.tables.find((t) => t.table === "wallet_reservations")).toMatchObject({ onlyInLive: 0, onlyInRebuilt: 0 });
      expect(report.differences).toBe(4);
      const byKey = new Map(table?.rows.map((r) => [r.key.wallet_id, r]));
      expect(byKey.size).toBe(3);
      const changedRow = byKey.get(changed);
      expect(Number(changedRow?.live?.balance_cents) - Number(changedRow?.rebuilt?.balance_cents)).toBe(7);
      expect(byKey.get(missing)?.live).toBeUndefined();
      expect(byKey.get(missing)?.rebuilt?.wallet_id).toBe(missing);
      expect(byKey.get("ghost")?.rebuilt).toBeUndefined();
      expect(byKey.get("ghost")?.live).toMatchObject({ owner_id: "nobody", balance_cents: 1 });
      await traffic;

      // The live projector goes on after the diff, and a rebuild puts the read model right.
      await host.rebuild("wallets");
      expect((await host.diff("wallets")).identical).toBe(true);
    } finally {
      await host.stop();
      db.close();
    }
  });
});

describe("projector option until", () => {
  it("applies commits up to exactly that position, then stops by itself", async () => {
    const db = openReadModelDb(join(dir, "until.sqlite"));
    try {
      // The position of a commit well inside the stream (positions count command records too).
      let until = 0;
      for await (const commit of app.streams.store.readAll({ fromSeq: 120 })) {
        until = commit.seq;
        break;
      }
      const projector = createProjector({ store: app.streams.store, db, projection: walletsProjection, log, batchSize: 7, until });
      projector.start();
      expect(await projector.waitFor(until, 20_000)).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(projector.status()).toMatchObject({ state: "stopped", position: until });
      expect(checkpointOf(db, "wallets")).toBe(until);
      await projector.stop();
    } finally {
      db.close();
    }
  });
});

/** A small projection: commits per wallet, with the given schema. */
function commitsPerWallet(schema: string): Projection {
  return {
    name: "wallet_commits",
    migrate: (db) => {
      db.exec(schema);
    },
    prepare(db) {
      const count = db.prepare<[string]>(
        "INSERT INTO wallet_commits (wallet_id, commits) VALUES (?, 1) ON CONFLICT (wallet_id) DO UPDATE SET commits = commits + 1",
      );
      return (commit) => {
        if (commit.subject.startsWith("ev.wallet.")) count.run(commit.subject.slice("ev.wallet.".length));
      };
    },
  };
}
