import Database from "better-sqlite3";
import { firstKeyword, refusalForKeyword } from "./sql-guard.js";

/** A SQLite value as a query returns it: integers as bigint, blobs as bytes. */
export type SqlValue = null | bigint | number | string | Uint8Array;

/** What the SQL worker is asked to run. */
export interface QueryRequest {
  /** The read-model file. */
  readonly file: string;
  readonly sql: string;
  /** Rows returned at most; one more is read to tell whether there were more. */
  readonly maxRows: number;
}

/** The SQL worker's answer: rows, or why there are none. Plain data, sent between processes. */
export type QueryReply =
  | {
      readonly ok: true;
      readonly columns: string[];
      readonly rows: SqlValue[][];
      readonly truncated: boolean;
      /** The lowest projection checkpoint in the read transaction the rows came from (0: none yet). */
      readonly position: number;
    }
  | { readonly ok: false; readonly error: QueryFailure };

/**
 * Why a query returned no rows. `refused`: the statement is not allowed or SQLite rejected it (the caller's to
 * fix). `unavailable`: the file cannot be opened or read (the caller can only retry). `failed`: anything else.
 */
export interface QueryFailure {
  readonly kind: "refused" | "unavailable" | "failed";
  readonly message: string;
  /** SQLite's result code, when SQLite raised it. */
  readonly code?: string;
}

// Result codes that say the file, not the statement, is the problem (extended codes share their prefix).
const unavailableCodes = new Set([
  "SQLITE_CANTOPEN",
  "SQLITE_NOTADB",
  "SQLITE_CORRUPT",
  "SQLITE_IOERR",
  "SQLITE_BUSY",
  "SQLITE_LOCKED",
  "SQLITE_PROTOCOL",
]);

/**
 * Runs one statement on a read-only connection of its own to `request.file` and closes it. Synchronous: it
 * blocks its thread for as long as SQLite runs, which is why it runs in a worker process that can be killed.
 *
 * Refused, in this order: SQL without a statement; by first keyword ATTACH, DETACH, PRAGMA, VACUUM, REINDEX,
 * ANALYZE; several statements; SQL that SQLite does not prepare (its message and code); a statement that
 * writes (`stmt.readonly` false: a read-only connection would refuse it at run time anyway, but only after
 * starting it); a statement that returns no rows (`stmt.reader` false: BEGIN, SAVEPOINT). The rows and the
 * position come from one read transaction. Never throws.
 */
export function runQuery(request: QueryRequest): QueryReply {
  const keyword = firstKeyword(request.sql);
  if (keyword === undefined) return refused("refused: the SQL holds no statement");
  const byKeyword = refusalForKeyword(keyword);
  if (byKeyword !== undefined) return refused(byKeyword);

  let db: Database.Database;
  try {
    db = new Database(request.file, { readonly: true, fileMustExist: true });
  } catch (err) {
    // A missing file is SQLITE_CANTOPEN; a missing directory is a TypeError of better-sqlite3's own.
    const code = err instanceof Database.SqliteError ? err.code : undefined;
    const why = err instanceof Error ? err.message : String(err);
    const message = `the read models (${request.file}) cannot be opened: ${why}${code === undefined ? "" : ` (${code})`}; has a projector run yet?`;
    return { ok: false, error: code === undefined ? { kind: "unavailable", message } : { kind: "unavailable", message, code } };
  }
  try {
    db.defaultSafeIntegers(true);
    let stmt: Database.Statement<unknown[], SqlValue[]>;
    try {
      stmt = db.prepare<unknown[], SqlValue[]>(request.sql);
    } catch (err) {
      // better-sqlite3 throws a RangeError for "no statements" (ruled out above) and for "more than one".
      if (err instanceof RangeError) {
        return refused("refused: the SQL holds more than one statement; send one statement per query");
      }
      return failure(err, request.file, "SQLite refused the statement");
    }
    const what = keyword === "" ? "the statement" : keyword;
    if (!stmt.readonly) return refused(`${what} refused: the statement writes to the database, and queries only read`);
    if (!stmt.reader) {
      return refused(
        `${what} refused: the statement returns no rows; a query is one statement that returns rows (SELECT, VALUES, WITH … SELECT)`,
      );
    }
    return db.transaction((): QueryReply => {
      const position = slowestProjection(db)?.position ?? 0;
      const columns = stmt.columns().map((c) => c.name);
      const rows: SqlValue[][] = [];
      let truncated = false;
      for (const row of stmt.raw(true).iterate()) {
        if (rows.length === request.maxRows) {
          truncated = true;
          break;
        }
        rows.push(row);
      }
      return { ok: true, columns, rows, truncated, position };
    })();
  } catch (err) {
    return failure(err, request.file, "the statement failed in SQLite");
  } finally {
    db.close();
  }
}

/**
 * The projection whose checkpoint is lowest, and that checkpoint: every read model includes every commit up to
 * it. Undefined when no projection has a checkpoint yet (the table is missing or empty).
 */
export function slowestProjection(db: Database.Database): { projection: string; position: number } | undefined {
  const table = db
    .prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'projection_checkpoints'")
    .pluck()
    .get();
  if (table === undefined) return undefined;
  const row = db
    .prepare<[], { projection: string; position: bigint | number }>(
      "SELECT projection, position FROM projection_checkpoints ORDER BY position LIMIT 1",
    )
    .get();
  return row === undefined ? undefined : { projection: row.projection, position: Number(row.position) };
}

function refused(message: string, code?: string): QueryReply {
  return { ok: false, error: code === undefined ? { kind: "refused", message } : { kind: "refused", message, code } };
}

/** `err` as a reply; a SQLite error that is the statement's fault is refused with `what` before its message. */
function failure(err: unknown, file: string, what: string): QueryReply {
  if (err instanceof Database.SqliteError) {
    const primary = err.code.split("_", 2).join("_");
    if (unavailableCodes.has(primary)) {
      const message = `the read models (${file}) cannot be read: ${err.message} (${err.code})`;
      return { ok: false, error: { kind: "unavailable", message, code: err.code } };
    }
    return refused(`${what}: ${err.message} (${err.code})`, err.code);
  }
  return { ok: false, error: { kind: "failed", message: err instanceof Error ? (err.stack ?? err.message) : String(err) } };
}
