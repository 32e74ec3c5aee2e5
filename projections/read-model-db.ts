import Database from "better-sqlite3";

/** A SQLite database of read models, as better-sqlite3 opens it. */
export type ReadModelDb = Database.Database;

/**
 * Opens (creating it when missing) the SQLite file that holds read models, their checkpoints and the commits
 * that projections could not apply (`parked_commits`, read with `listParked`).
 *
 * WAL lets queries read while a projector writes. `synchronous = NORMAL` keeps every committed transaction
 * across a process crash; a power loss may drop the last few, which is safe because each transaction carries
 * its own checkpoint: the projector resumes from the last one that survived. Integers come back as bigint, so
 * that int64 money never passes through a float.
 */
export function openReadModelDb(file: string): ReadModelDb {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 5000");
  db.defaultSafeIntegers(true);
  db.exec(`CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    updated_at TEXT NOT NULL
  ) STRICT`);
  // One row per commit a projection gave up on: what it was (subject, event types, the commit itself), why
  // (the last error) and how hard it was tried. See parked.ts.
  db.exec(`CREATE TABLE IF NOT EXISTS parked_commits (
    projection TEXT NOT NULL,
    position INTEGER NOT NULL,
    subject TEXT NOT NULL,
    event_types TEXT NOT NULL,
    commit_bytes BLOB NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    parked_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (projection, position)
  ) STRICT`);
  return db;
}
