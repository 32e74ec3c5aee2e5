import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { RowSchema, SqlService, ValueSchema, type Row, type Value } from "../../gen/foldline/analytics/v1/sql_service_pb.js";
import { ReadModelBehind, ReadModelUnavailable } from "../errors.js";
import { SqlRefused, SqlTimeout } from "./sql-errors.js";
import type { SqlRunner, SqlValue } from "./sql-runner.js";

/** Limits of {@link registerSql}; the defaults are those `foldline.analytics.v1.SqlService` documents. */
export interface SqlServiceOptions {
  /** Rows returned when a request says 0 (default 1000). */
  readonly defaultMaxRows?: number;
  /** The most rows a request may ask for (default 10 000). */
  readonly maxRowsLimit?: number;
  /** Time cap when a request says 0, in ms (default 2000). */
  readonly defaultTimeoutMs?: number;
  /** The longest time cap a request may ask for, in ms (default 30 000). */
  readonly timeoutMsLimit?: number;
}

/**
 * Registers `foldline.analytics.v1.SqlService`, answered by `runner`. Errors become Connect codes here, not in
 * the API's error interceptor, because they belong to this service alone: SqlRefused and out-of-range limits
 * are INVALID_ARGUMENT, SqlTimeout and a `min_position` wait that runs out are DEADLINE_EXCEEDED, read models
 * that cannot be opened are UNAVAILABLE; anything else goes on to the interceptor (INTERNAL, logged). The call's
 * own deadline shortens the time cap, and a cancelled call stops its statement.
 */
export function registerSql(router: ConnectRouter, runner: SqlRunner, options: SqlServiceOptions = {}): void {
  const defaultMaxRows = options.defaultMaxRows ?? 1000;
  const maxRowsLimit = options.maxRowsLimit ?? 10_000;
  const defaultTimeoutMs = options.defaultTimeoutMs ?? 2000;
  const timeoutMsLimit = options.timeoutMsLimit ?? 30_000;
  router.service(SqlService, {
    async query(req, context) {
      const maxRows = withinLimit("max_rows", req.maxRows, defaultMaxRows, maxRowsLimit);
      const timeoutMs = Math.min(withinLimit("timeout_ms", req.timeoutMs, defaultTimeoutMs, timeoutMsLimit), callTimeLeft(context));
      if (req.minPosition > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new ConnectError(`min_position ${req.minPosition} is beyond any stream position`, Code.InvalidArgument);
      }
      try {
        const result = await runner.run(req.sql, {
          maxRows,
          timeoutMs,
          minPosition: Number(req.minPosition),
          signal: context.signal,
        });
        return {
          columns: result.columns,
          rows: result.rows.map(toRow),
          truncated: result.truncated,
          position: BigInt(result.position),
        };
      } catch (err) {
        throw toConnectError(err);
      }
    },
  });
}

/** `value` when within 1…`limit`, `fallback` for 0; INVALID_ARGUMENT otherwise. */
function withinLimit(field: string, value: number, fallback: number, limit: number): number {
  if (value === 0) return fallback;
  if (value < 0 || value > limit) {
    throw new ConnectError(`${field} must be between 1 and ${limit} (0 means ${fallback}), got ${value}`, Code.InvalidArgument);
  }
  return value;
}

/** The call's time left in whole ms, at least 1 (a call past its deadline fails by itself); unlimited without one. */
function callTimeLeft(context: HandlerContext): number {
  const left = context.timeoutMs();
  return left === undefined ? Number.POSITIVE_INFINITY : Math.max(1, Math.floor(left));
}

function toConnectError(err: unknown): unknown {
  if (err instanceof SqlRefused) return new ConnectError(err.message, Code.InvalidArgument);
  if (err instanceof SqlTimeout || err instanceof ReadModelBehind) return new ConnectError(err.message, Code.DeadlineExceeded);
  if (err instanceof ReadModelUnavailable) return new ConnectError(err.message, Code.Unavailable);
  return err;
}

function toRow(values: readonly SqlValue[]): Row {
  return create(RowSchema, { values: values.map(toValue) });
}

function toValue(value: SqlValue): Value {
  if (value === null) return create(ValueSchema, { kind: { case: "nullValue", value: true } });
  switch (typeof value) {
    case "bigint":
      return create(ValueSchema, { kind: { case: "integer", value } });
    case "number":
      return create(ValueSchema, { kind: { case: "real", value } });
    case "string":
      return create(ValueSchema, { kind: { case: "text", value } });
    default:
      return create(ValueSchema, { kind: { case: "blob", value } });
  }
}
