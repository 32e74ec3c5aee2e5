import type { SqlValue } from "./run-query.js";

/** The output formats of `npm run sql`. */
export type SqlOutputFormat = "table" | "csv" | "json";

/** Column names and rows, as a query returns them. */
export interface SqlTable {
  readonly columns: readonly string[];
  readonly rows: readonly (readonly SqlValue[])[];
}

/** `table` as text in `format`, ending with a newline. */
export function formatSqlTable(table: SqlTable, format: SqlOutputFormat): string {
  switch (format) {
    case "table":
      return formatAligned(table);
    case "csv":
      return formatCsv(table);
    case "json":
      return formatJson(table);
  }
}

/**
 * An aligned text table: a header, a rule, the rows, and a row count. Numbers are right-aligned; NULL is
 * `NULL`, a blob its SQL literal (`x'0102'`), a real always has a fraction or exponent (`2.0`), and control
 * characters in text are escaped (`\n`) so that a row stays on one line.
 */
export function formatAligned({ columns, rows }: SqlTable): string {
  const cells = rows.map((row) => row.map((value) => (value === null ? "NULL" : escapeControls(scalarText(value)))));
  const header = columns.map(escapeControls);
  const widths = header.map((name, i) => Math.max(width(name), ...cells.map((row) => width(row[i] ?? ""))));
  const numeric = columns.map((_, i) => rows.length > 0 && rows.every((row) => typeof row[i] === "bigint" || typeof row[i] === "number" || row[i] === null));
  const line = (values: readonly string[], alignNumbers: boolean): string =>
    values
      .map((text, i) => {
        const pad = " ".repeat(Math.max(0, (widths[i] ?? 0) - width(text)));
        return alignNumbers && numeric[i] === true ? pad + text : text + pad;
      })
      .join(" | ")
      .trimEnd();
  const out = [line(header, false), widths.map((w) => "-".repeat(w)).join("-+-")];
  for (const row of cells) out.push(line(row, true));
  out.push(`(${rows.length} ${rows.length === 1 ? "row" : "rows"})`);
  return out.join("\n") + "\n";
}

/**
 * CSV as RFC 4180 has it: a header record, CRLF after every record, and a field in double quotes (its quotes
 * doubled) when it holds a comma, a quote, CR or LF. NULL is an empty field; a blob is its SQL literal.
 */
function formatCsv({ columns, rows }: SqlTable): string {
  const record = (fields: readonly string[]): string => fields.map(csvField).join(",") + "\r\n";
  return record(columns) + rows.map((row) => record(row.map((value) => (value === null ? "" : scalarText(value))))).join("");
}

/**
 * A JSON array with an object per row, keyed by column name (a repeated name gets `_2`, `_3`, … added). Integers
 * are numbers when they are safe integers and strings otherwise; reals are numbers (strings when not finite);
 * blobs are base64, as in protobuf's JSON mapping.
 */
function formatJson({ columns, rows }: SqlTable): string {
  const keys = uniqueKeys(columns);
  const objects = rows.map((row) => Object.fromEntries(keys.map((key, i) => [key, jsonValue(row[i] ?? null)])));
  return JSON.stringify(objects, null, 2) + "\n";
}

function scalarText(value: bigint | number | string | Uint8Array): string {
  if (typeof value === "bigint" || typeof value === "string") return value.toString();
  if (typeof value === "number") return Number.isInteger(value) && Math.abs(value) < 1e15 ? value.toFixed(1) : String(value);
  return `x'${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex")}'`;
}

function jsonValue(value: SqlValue): unknown {
  if (typeof value === "bigint") {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  }
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value);
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64");
  return value;
}

function uniqueKeys(columns: readonly string[]): string[] {
  const used = new Set<string>();
  return columns.map((name) => {
    let key = name;
    for (let n = 2; used.has(key); n++) key = `${name}_${n}`;
    used.add(key);
    return key;
  });
}

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

// eslint-disable-next-line no-control-regex -- control characters are exactly what this matches
const controls = /[\u0000-\u001f\u007f]/g;

function escapeControls(text: string): string {
  return text.replace(controls, (c) => {
    switch (c) {
      case "\n":
        return "\\n";
      case "\r":
        return "\\r";
      case "\t":
        return "\\t";
      default:
        return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
    }
  });
}

/** Display width: code points, so that a letter outside the BMP counts once. */
function width(text: string): number {
  return Array.from(text).length;
}
