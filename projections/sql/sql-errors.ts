/** Errors of the SQL runner. Each has a readonly `kind`; `registerSql` maps them to Connect codes. */

/**
 * The statement is not run: it is not a single read-only statement that returns rows, or SQLite rejected it.
 * The message says what and why.
 */
export class SqlRefused extends Error {
  readonly kind = "sql-refused";
  /** SQLite's result code (`SQLITE_ERROR`, …) when SQLite refused the statement; undefined for our own refusals. */
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.name = "SqlRefused";
    this.code = code;
  }
}

/** The query did not finish within its time cap and was stopped, or did not get a worker in time. */
export class SqlTimeout extends Error {
  readonly kind = "sql-timeout";
  constructor(message: string) {
    super(message);
    this.name = "SqlTimeout";
  }
}
