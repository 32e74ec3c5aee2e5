import Database from "better-sqlite3";
import { ReadModelBehind, ReadModelUnavailable } from "./errors.js";
import type { ReadModelDb } from "./read-model-db.js";

/** A query's answer and the position of the stream it reflects. */
export interface AtPosition<T> {
  readonly value: T;
  /** Every commit up to this stream sequence is in the read model the answer came from. */
  readonly position: number;
}

/** Reads read models on a read-only connection of its own, waiting for a position first when asked to. */
export interface ReadModelReader {
  /**
   * Waits until `projection`'s checkpoint reaches `minPosition` (0: not at all), at most `maxWaitMs`, then runs
   * `query` in one read transaction, so that the answer and the position it reflects belong together. Throws
   * ReadModelBehind when the wait runs out, ReadModelUnavailable when there is no read-model file.
   */
  read<T>(projection: string, minPosition: number, maxWaitMs: number, query: (db: ReadModelDb) => T): Promise<AtPosition<T>>;
  close(): void;
}

/** Options of {@link createReadModelReader}. */
export interface ReadModelReaderOptions {
  readonly file: string;
  /**
   * Resolves true once the projection has applied `position`: an in-process projector's own notification. Without
   * it (the projector runs elsewhere) the checkpoint is polled.
   */
  readonly waitFor?: (projection: string, position: number, timeoutMs: number) => Promise<boolean>;
  /** Polling interval without `waitFor` (default 5 ms). */
  readonly pollMs?: number;
}

/** Creates a reader. The file is opened on first use, read-only; writes through it fail in SQLite itself. */
export function createReadModelReader(options: ReadModelReaderOptions): ReadModelReader {
  const pollMs = options.pollMs ?? 5;
  let db: ReadModelDb | undefined;
  const open = (): ReadModelDb => {
    if (db !== undefined) return db;
    try {
      db = new Database(options.file, { readonly: true, fileMustExist: true });
    } catch (err) {
      throw new ReadModelUnavailable(`the read models (${options.file}) cannot be opened: is a projector running?`, {
        cause: err,
      });
    }
    db.pragma("busy_timeout = 5000");
    db.defaultSafeIntegers(true);
    return db;
  };
  const checkpoint = (conn: ReadModelDb, projection: string): number =>
    Number(
      conn
        .prepare<[string], { position: bigint }>("SELECT position FROM projection_checkpoints WHERE projection = ?")
        .get(projection)?.position ?? 0n,
    );

  return {
    async read(projection, minPosition, maxWaitMs, query) {
      const conn = open();
      const started = Date.now();
      const deadline = started + maxWaitMs;
      while (checkpoint(conn, projection) < minPosition) {
        const left = deadline - Date.now();
        if (left <= 0) throw new ReadModelBehind(projection, checkpoint(conn, projection), minPosition, Date.now() - started);
        if (options.waitFor !== undefined) await options.waitFor(projection, minPosition, left);
        else await new Promise((resolve) => setTimeout(resolve, Math.min(pollMs, left)));
      }
      return conn.transaction(() => ({ position: checkpoint(conn, projection), value: query(conn) }))();
    },
    close() {
      db?.close();
      db = undefined;
    },
  };
}
