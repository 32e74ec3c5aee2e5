import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";

/** Another process holds the lock of the data directory: a second foldline would share its store. */
export class DataDirInUseError extends Error {
  readonly kind = "data-dir-in-use";
  constructor(
    readonly dataDir: string,
    /** The holder's pid, when it has written it yet. */
    readonly holderPid: number | undefined,
  ) {
    super(
      `DATA_DIR ${dataDir} is in use by foldline ${holderPid === undefined ? "in another process" : `process ${holderPid}`}` +
        ": stop that one first, or give this one a DATA_DIR of its own",
    );
    this.name = "DataDirInUseError";
  }
}

/** The lock of a data directory, held by this process until released or until it ends. */
export interface DataDirLock {
  /** `<dataDir>/foldline.lock` */
  readonly file: string;
  /** Releases the lock; safe to call twice. */
  release(): void;
}

/**
 * The connections holding locks. A connection that nothing references is collected, closed by its finalizer, and
 * its lock released with it: this keeps each one until `release`, whatever the caller does with the lock object.
 */
const held = new Set<Database.Database>();

/**
 * Takes the lock of `dataDir` (creating the folder when missing), or throws {@link DataDirInUseError} at once when
 * another process holds it.
 *
 * The lock is the kernel's: an exclusive POSIX record lock on `<dataDir>/foldline.lock`, taken through SQLite (an
 * exclusive transaction left open) and never waited for. The kernel grants it to one process only, so two starts
 * at the same moment cannot both get it, and releases it when its process ends, however it ends: a lock left by a
 * process killed outright blocks nothing, and no "stale" lock is ever judged or removed. The holder then writes its
 * pid to `<dataDir>/foldline.pid`, for the message of the process it refuses.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, "foldline.lock");
  const pidFile = join(dataDir, "foldline.pid");
  const db = new Database(file, { timeout: 0 });
  try {
    db.pragma("journal_mode = MEMORY"); // no journal file beside the lock: nothing is ever written
    db.exec("BEGIN EXCLUSIVE");
  } catch (err) {
    db.close();
    if ((err as { code?: unknown }).code === "SQLITE_BUSY") throw new DataDirInUseError(dataDir, holderPid(pidFile));
    throw err;
  }
  held.add(db);
  writeFileSync(pidFile, `${process.pid}\n`);
  return {
    file,
    release() {
      if (!held.delete(db)) return;
      rmSync(pidFile, { force: true });
      db.close();
    },
  };
}

/**
 * The pid the holder wrote; undefined before it has (the file may still name a predecessor killed outright, no
 * longer running) or when the file is unreadable.
 */
function holderPid(pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    process.kill(pid, 0); // throws when no process runs under it
    return pid;
  } catch {
    return undefined;
  }
}
