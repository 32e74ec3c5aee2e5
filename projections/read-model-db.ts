import Database from "better-sqlite3";

/** A SQLite database of read models, as better-sqlite3 opens it. */
export type ReadModelDb = Database.Database;

/**
 * Opens (creating it when missing) the SQLite file that holds read models and their checkpoints.
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
  return db;
}
