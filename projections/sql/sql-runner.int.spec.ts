import { existsSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReadModelBehind, ReadModelUnavailable } from "../errors.js";
import { SqlRefused, SqlTimeout } from "./sql-errors.js";
import { createSqlRunner, type SqlRunner } from "./sql-runner.js";
import { createSqlTestDb, type SqlTestDb } from "./sql-test-db.js";

const runaway = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r";
const limits = { maxRows: 100, timeoutMs: 10_000 };

let db: SqlTestDb;
let runner: SqlRunner;
let hashBefore: string;

beforeAll(async () => {
  db = createSqlTestDb();
  hashBefore = db.hash();
  runner = createSqlRunner({ file: db.file });
  await runner.ready();
});

afterAll(async () => {
  await runner.close();
  db[Symbol.dispose]();
});

/** The SqlRefused that running `sql` rejects with. */
async function refusal(sql: string): Promise<SqlRefused> {
  const err: unknown = await runner.run(sql, limits).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SqlRefused);
  return err as SqlRefused;
}

describe("a statement that reads", () => {
  it("returns its columns and typed values: NULL, integer as bigint, real, text, blob", async () => {
    const result = await runner.run("SELECT wallet_id, owner_id, balance_cents, rate, note, avatar FROM wallets ORDER BY wallet_id", limits);
    expect(result.columns).toEqual(["wallet_id", "owner_id", "balance_cents", "rate", "note", "avatar"]);
    expect(result.rows).toEqual([
      ["w1", "alice", 1500n, 0.25, 'first, "quoted"', Buffer.from([0, 0xff, 0x10])],
      ["w2", "bob", 9223372036854775807n, 2, null, null],
      ["w3", null, -7n, null, "line1\nline2", Buffer.alloc(0)],
    ]);
    expect(result.rows[0]?.[5]).toBeInstanceOf(Uint8Array);
    expect(result.truncated).toBe(false);
    expect(result.position).toBe(10);
  });

  it.each([
    ["VALUES (1, 'a')", ["column1", "column2"]],
    ["WITH w AS (SELECT count(*) AS n FROM wallets) SELECT n FROM w", ["n"]],
    ["EXPLAIN QUERY PLAN SELECT * FROM wallets", ["id", "parent", "notused", "detail"]],
    ["SELECT name FROM pragma_table_info('wallets')", ["name"]],
    ["-- leading note\n/* and a block */ SELECT 1 AS one; -- trailing", ["one"]],
  ])("runs %j", async (sql, columns) => {
    expect((await runner.run(sql, limits)).columns).toEqual(columns);
  });

  it("returns max_rows rows and says truncated when there are more", async () => {
    const capped = await runner.run("SELECT n FROM numbers ORDER BY n", { ...limits, maxRows: 20 });
    expect(capped.rows).toHaveLength(20);
    expect(capped.rows.at(-1)).toEqual([20n]);
    expect(capped.truncated).toBe(true);
    const exact = await runner.run("SELECT n FROM numbers", { ...limits, maxRows: 50 });
    expect(exact.rows).toHaveLength(50);
    expect(exact.truncated).toBe(false);
  });
});

describe("refusals", () => {
  it.each([
    ["INSERT INTO wallets (wallet_id) VALUES ('w9')", /^INSERT refused: the statement writes to the database/],
    ["INSERT INTO wallets (wallet_id) VALUES ('w9') RETURNING wallet_id", /^INSERT refused: the statement writes/],
    ["UPDATE wallets SET balance_cents = 0", /^UPDATE refused: the statement writes/],
    ["DELETE FROM wallets", /^DELETE refused: the statement writes/],
    ["WITH x AS (SELECT 1) DELETE FROM wallets", /^WITH refused: the statement writes/],
    ["CREATE TABLE t (a)", /^CREATE refused: the statement writes/],
    ["CREATE TEMP TABLE t (a)", /^CREATE refused: the statement writes/],
    ["DROP TABLE wallets", /^DROP refused: the statement writes/],
    ["ALTER TABLE wallets ADD COLUMN x", /^ALTER refused: the statement writes/],
    ["BEGIN", /^BEGIN refused: the statement returns no rows/],
    ["ATTACH DATABASE ':memory:' AS other", /^ATTACH is refused: a query reads the read models only/],
    ["-- looks harmless\n/* really */ attach ':memory:' AS other", /^ATTACH is refused/],
    ["DETACH DATABASE other", /^DETACH is refused/],
    ["PRAGMA journal_mode = DELETE", /^PRAGMA is refused, even a PRAGMA that only reads/],
    ["PRAGMA table_info(wallets)", /^PRAGMA is refused, even a PRAGMA that only reads/],
    ["VACUUM", /^VACUUM is refused/],
    ["REINDEX", /^REINDEX is refused/],
    ["ANALYZE", /^ANALYZE is refused/],
    ["SELECT 1; DELETE FROM wallets", /^refused: the SQL holds more than one statement/],
    ["", /^refused: the SQL holds no statement/],
    ["-- nothing but a comment", /^refused: the SQL holds no statement/],
  ])("refuses %j", async (sql, message) => {
    const err = await refusal(sql);
    expect(err.kind).toBe("sql-refused");
    expect(err.message).toMatch(message);
    expect(err.code).toBeUndefined();
  });

  it("refuses VACUUM INTO without writing the copy", async () => {
    const copy = join(db.dir, "copy.sqlite");
    expect((await refusal(`VACUUM INTO '${copy}'`)).message).toMatch(/^VACUUM is refused/);
    expect(existsSync(copy)).toBe(false);
  });

  it("passes on SQLite's message and code for a syntax error or an unknown table", async () => {
    const syntax = await refusal("SELEC 1");
    expect(syntax.message).toBe('SQLite refused the statement: near "SELEC": syntax error (SQLITE_ERROR)');
    expect(syntax.code).toBe("SQLITE_ERROR");
    expect((await refusal("SELECT * FROM nowhere")).message).toBe("SQLite refused the statement: no such table: nowhere (SQLITE_ERROR)");
  });

  it("passes on an error SQLite raises while running", async () => {
    const err = await refusal("SELECT load_extension('/nowhere')");
    expect(err.message).toMatch(/^the statement failed in SQLite: not authorized \(SQLITE_ERROR\)$/);
    expect(err.code).toBe("SQLITE_ERROR");
  });

  it("leaves the file as it was", async () => {
    await refusal("DELETE FROM wallets");
    await refusal("PRAGMA journal_mode = DELETE");
    expect(db.hash()).toBe(hashBefore);
    const check = new Database(db.file, { readonly: true });
    try {
      expect(check.pragma("journal_mode", { simple: true })).toBe("wal");
      expect(check.prepare("SELECT count(*) FROM wallets").pluck().get()).toBe(3);
      expect(check.prepare("SELECT group_concat(name) FROM sqlite_schema WHERE type = 'table'").pluck().get()).toBe(
        "projection_checkpoints,wallets,numbers",
      );
    } finally {
      check.close();
    }
  });
});

describe("the time cap", () => {
  it("stops a runaway statement within the cap, and the next query still runs", async () => {
    const cap = 1_000;
    const started = Date.now();
    const err: unknown = await runner.run(runaway, { maxRows: 10, timeoutMs: cap }).catch((e: unknown) => e);
    const took = Date.now() - started;
    expect(err).toBeInstanceOf(SqlTimeout);
    expect((err as SqlTimeout).kind).toBe("sql-timeout");
    expect((err as SqlTimeout).message).toBe("the statement ran past its time cap of 1000 ms and was stopped");
    expect(took).toBeGreaterThanOrEqual(cap - 5);
    expect(took).toBeLessThan(cap + 2_000);
    expect((await runner.run("SELECT count(*) FROM wallets", limits)).rows).toEqual([[3n]]);
  });

  it("runs another query beside a runaway one", async () => {
    const stuck = runner.run(runaway, { maxRows: 10, timeoutMs: 3_000 }).catch((e: unknown) => e);
    expect((await runner.run("SELECT 7", limits)).rows).toEqual([[7n]]);
    expect(await stuck).toBeInstanceOf(SqlTimeout);
  });

  it("stops a statement when the signal aborts, with the signal's reason", async () => {
    const reason = new Error("caller went away");
    const started = Date.now();
    const err = await runner.run(runaway, { maxRows: 10, timeoutMs: 20_000, signal: AbortSignal.timeout(300) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DOMException);
    expect(Date.now() - started).toBeLessThan(2_300);
    const controller = new AbortController();
    controller.abort(reason);
    await expect(runner.run("SELECT 1", { ...limits, signal: controller.signal })).rejects.toBe(reason);
  });

  it("waits for a free worker within the cap when every worker is busy", async () => {
    const single = createSqlRunner({ file: db.file, workers: 1 });
    try {
      await single.ready();
      const stuck = single.run(runaway, { maxRows: 10, timeoutMs: 1_500 }).catch((e: unknown) => e);
      const err: unknown = await single.run("SELECT 1", { maxRows: 10, timeoutMs: 300 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SqlTimeout);
      expect((err as Error).message).toBe("no SQL worker became free within the time cap of 300 ms: 1 statement is running");
      expect(await stuck).toBeInstanceOf(SqlTimeout);
      expect((await single.run("SELECT 1", limits)).rows).toEqual([[1n]]);
    } finally {
      await single.close();
    }
  });
});

describe("min_position", () => {
  it("answers at once when every checkpoint is there", async () => {
    expect((await runner.run("SELECT 1", { ...limits, minPosition: 10 })).position).toBe(10);
  });

  it("names the projection that is behind when the wait runs out", async () => {
    const err: unknown = await runner.run("SELECT 1", { ...limits, timeoutMs: 200, minPosition: 11 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReadModelBehind);
    expect((err as Error).message).toMatch(/^read model artworks is at position 10, not yet at 11, after waiting \d+ ms$/);
  });

  it("answers once the slowest projection gets there", async () => {
    const answer = runner.run("SELECT 1", { ...limits, minPosition: 11 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    db.write((w) => w.prepare("UPDATE projection_checkpoints SET position = 11 WHERE projection = 'artworks'").run());
    expect((await answer).position).toBe(11);
  });
});

describe("a lazy runner", () => {
  it("starts a worker on the first query", async () => {
    const lazy = createSqlRunner({ file: db.file, workers: 1, lazy: true });
    try {
      expect((await lazy.run("SELECT 5", limits)).rows).toEqual([[5n]]);
    } finally {
      await lazy.close();
    }
  });
});

describe("a missing read-model file", () => {
  it.each([
    ["file", "missing.sqlite"],
    ["directory", join("missing", "read-models.sqlite")],
  ])("is ReadModelUnavailable (missing %s)", async (_, name) => {
    const missing = createSqlRunner({ file: join(db.dir, name), workers: 1 });
    try {
      const err: unknown = await missing.run("SELECT 1", limits).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ReadModelUnavailable);
      expect((err as Error).message).toContain("cannot be opened");
      await expect(missing.run("SELECT 1", { ...limits, minPosition: 1 })).rejects.toBeInstanceOf(ReadModelUnavailable);
    } finally {
      await missing.close();
    }
    expect(existsSync(join(db.dir, name))).toBe(false);
  });
});
