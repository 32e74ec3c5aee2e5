// A read-model file for the SQL specs: a few typed rows and projection checkpoints, no projector or NATS needed.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";

/** A temporary read-model file, written and closed. */
export interface SqlTestDb extends Disposable {
  readonly dir: string;
  readonly file: string;
  /** sha256 of the file's bytes. */
  hash(): string;
  /** Runs `fn` on a read-write connection of its own (say, to move a checkpoint). */
  write(fn: (db: Database.Database) => void): void;
}

/**
 * Creates, in a temporary directory, a WAL-mode file with `wallets` (3 rows: NULL, integers up to 2^63 - 1, reals,
 * text, blobs), `numbers` (n from 1 to 50) and `projection_checkpoints` (wallets at 12, artworks at 10).
 * Disposing it deletes the directory.
 */
export function createSqlTestDb(): SqlTestDb {
  const dir = mkdtempSync(join(tmpdir(), "foldline-sql-"));
  const file = join(dir, "read-models.sqlite");
  const write = (fn: (db: Database.Database) => void): void => {
    const db = new Database(file);
    try {
      db.pragma("journal_mode = WAL");
      fn(db);
    } finally {
      db.close();
    }
  };
  write((db) => {
    db.exec(`
      CREATE TABLE projection_checkpoints (projection TEXT PRIMARY KEY, position INTEGER NOT NULL, updated_at TEXT NOT NULL) STRICT;
      INSERT INTO projection_checkpoints VALUES ('wallets', 12, '2030-01-01T00:00:00Z'), ('artworks', 10, '2030-01-01T00:00:00Z');
      CREATE TABLE wallets (wallet_id TEXT PRIMARY KEY, owner_id TEXT, balance_cents INTEGER, rate REAL, note TEXT, avatar BLOB);
      INSERT INTO wallets VALUES
        ('w1', 'alice', 1500, 0.25, 'first, "quoted"', x'00ff10'),
        ('w2', 'bob', 9223372036854775807, 2.0, NULL, NULL),
        ('w3', NULL, -7, NULL, 'line1' || char(10) || 'line2', x'');
      CREATE TABLE numbers (n INTEGER PRIMARY KEY);
      WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 50) INSERT INTO numbers SELECT n FROM r;
    `);
  });
  return {
    dir,
    file,
    hash: () => createHash("sha256").update(readFileSync(file)).digest("hex"),
    write,
    [Symbol.dispose]: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
