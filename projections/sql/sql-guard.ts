/**
 * The checks a statement passes before it runs that SQLite's own flags do not cover: by its first keyword.
 * Pure string functions, no SQLite.
 */

/**
 * The statement's first keyword, upper-cased, after whitespace, empty statements (`;`) and SQL comments
 * (`-- …` to the end of the line, `/* … *\/`, an unterminated one running to the end). `undefined` when the SQL
 * holds nothing else: no statement at all. `""` when what comes first is not a word (SQLite then reports the
 * syntax error).
 */
export function firstKeyword(sql: string): string | undefined {
  let i = 0;
  while (i < sql.length) {
    const c = sql[i] ?? "";
    if (c === ";" || /\s/.test(c)) {
      i++;
    } else if (sql.startsWith("--", i)) {
      const end = sql.indexOf("\n", i + 2);
      i = end === -1 ? sql.length : end + 1;
    } else if (sql.startsWith("/*", i)) {
      const end = sql.indexOf("*/", i + 2);
      i = end === -1 ? sql.length : end + 2;
    } else {
      return /^[A-Za-z_]+/.exec(sql.slice(i, i + 64))?.[0].toUpperCase() ?? "";
    }
  }
  return undefined;
}

// Statements a read-only connection would still run: they change the connection (ATTACH, DETACH, PRAGMA),
// write elsewhere (VACUUM INTO a new file) or are maintenance that belongs to whoever writes the file.
const refusedKeywords: Readonly<Record<string, string>> = {
  ATTACH: "ATTACH is refused: a query reads the read models only, never another database file",
  DETACH: "DETACH is refused: a query cannot change the databases of its connection",
  PRAGMA:
    "PRAGMA is refused, even a PRAGMA that only reads, because pragmas can change the connection's settings; " +
    "read a pragma through its table-valued function in a SELECT instead, e.g. SELECT * FROM pragma_table_info('projection_checkpoints')",
  VACUUM: "VACUUM is refused: it rewrites the database, or writes a copy of it to a file (VACUUM INTO)",
  REINDEX: "REINDEX is refused: it rebuilds indexes, which writes to the database",
  ANALYZE: "ANALYZE is refused: it writes statistics into the database",
};

/** Why a statement starting with `keyword` is refused whatever follows, or undefined when it may go on. */
export function refusalForKeyword(keyword: string): string | undefined {
  return Object.hasOwn(refusedKeywords, keyword) ? refusedKeywords[keyword] : undefined;
}
