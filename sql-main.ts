// `npm run sql -- [--format table|csv|json] [--max-rows N] [--timeout-ms N] "<sql>"`: runs one read-only statement
// on the read models (READ_MODEL_DB, by default $DATA_DIR/read-models.sqlite) and prints its rows on stdout.
import { parseCommandLine, runCli, UsageError, wholeNumber } from "./commands/cli.js";
import { ReadModelUnavailable } from "./projections/errors.js";
import { loadProjectionsConfig } from "./projections/config.js";
import { SqlRefused, SqlTimeout } from "./projections/sql/sql-errors.js";
import { formatSqlTable, type SqlOutputFormat } from "./projections/sql/sql-format.js";
import { createSqlRunner } from "./projections/sql/sql-runner.js";
import { ConfigError, loadStreamsConfig } from "./streams/config.js";

const usage = `usage: npm run sql -- [--format table|csv|json] [--max-rows N] [--timeout-ms N] "<sql>"

Runs one statement that only reads (SELECT, VALUES, WITH … SELECT) on the read models, READ_MODEL_DB
(by default $DATA_DIR/read-models.sqlite), on a read-only connection, and prints its rows.

  --format      table (default: aligned, NULL shown as NULL, blobs as x'…'), csv (RFC 4180: header,
                CRLF, NULL as an empty field) or json (an array of objects; integers beyond 2^53 as strings,
                blobs as base64)
  --max-rows    rows printed at most, 1 to 10000 (default 1000); when there are more, stderr says so
  --timeout-ms  time cap, 1 to 30000 ms (default 2000): a statement still running then is stopped

Writes, ATTACH, DETACH, PRAGMA, VACUUM, REINDEX, ANALYZE and several statements are refused.
Exit status: 0 with rows printed; 1 when the statement is refused, runs out of time or the read models
cannot be opened, with the reason on stderr; 2 on a usage error.
`;


interface Invocation {
  readonly sql: string;
  readonly format: SqlOutputFormat;
  readonly maxRows: number;
  readonly timeoutMs: number;
}

function parse(argv: string[]): Invocation | "help" {
  const { values, positionals } = parseCommandLine({
    args: argv,
    options: {
      format: { type: "string", default: "table" },
      "max-rows": { type: "string", default: "1000" },
      "timeout-ms": { type: "string", default: "2000" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  if (positionals.length !== 1) {
    throw new UsageError(`expected one SQL statement as a single argument, got ${positionals.length} arguments`);
  }
  const format = values.format;
  if (format !== "table" && format !== "csv" && format !== "json") {
    throw new UsageError(`--format must be table, csv or json, got "${format}"`);
  }
  return {
    sql: positionals[0] ?? "",
    format,
    maxRows: wholeNumber("--max-rows", values["max-rows"], 10_000),
    timeoutMs: wholeNumber("--timeout-ms", values["timeout-ms"], 30_000),
  };
}


function rows(n: number): string {
  return n === 1 ? "1 row" : `${n} rows`;
}

async function run(invocation: Invocation): Promise<number> {
  let file;
  try {
    file = loadProjectionsConfig(loadStreamsConfig().dataDir).databaseFile;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return 1;
  }

  const runner = createSqlRunner({ file, workers: 1 });
  try {
    // Loading the worker process is not the statement's time.
    await runner.ready();
    const result = await runner.run(invocation.sql, { maxRows: invocation.maxRows, timeoutMs: invocation.timeoutMs });
    process.stdout.write(formatSqlTable(result, invocation.format));
    if (result.truncated) {
      process.stderr.write(
        `truncated: the statement has more than ${rows(invocation.maxRows)}; only the first ${invocation.maxRows} are shown (--max-rows, at most 10000)\n`,
      );
    }
    return 0;
  } catch (err) {
    if (err instanceof SqlRefused || err instanceof SqlTimeout || err instanceof ReadModelUnavailable) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    await runner.close();
  }
}

runCli({ name: "sql", usage, parse, run });
