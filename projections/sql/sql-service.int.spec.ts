import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QueryRequestSchema, SqlService } from "../../gen/foldline/analytics/v1/sql_service_pb.js";
import { createApiServer, type ApiServer } from "../../commands/api-server.js";
import { createSqlRunner, type SqlRunner } from "./sql-runner.js";
import { registerSql } from "./sql-service.js";
import { createSqlTestDb, type SqlTestDb } from "./sql-test-db.js";

let db: SqlTestDb;
let runner: SqlRunner;
let missing: SqlRunner;
let server: ApiServer;
let sessions: Http2SessionManager;
let client: Client<typeof SqlService>;

beforeAll(async () => {
  db = createSqlTestDb();
  runner = createSqlRunner({ file: db.file });
  missing = createSqlRunner({ file: `${db.dir}/missing.sqlite`, workers: 1 });
  await Promise.all([runner.ready(), missing.ready()]);
  server = await createApiServer({
    routes: (router) => {
      registerSql(router, runner);
    },
    log: pino({ level: "silent" }),
  });
  sessions = new Http2SessionManager(server.url);
  client = createClient(SqlService, createGrpcTransport({ baseUrl: server.url, sessionManager: sessions }));
});

afterAll(async () => {
  sessions.abort();
  await server.close();
  await Promise.all([runner.close(), missing.close()]);
  db[Symbol.dispose]();
});

/** The ConnectError a call rejects with. */
async function failure(req: MessageInitShape<typeof QueryRequestSchema>): Promise<ConnectError> {
  const err: unknown = await client.query(req).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  return err as ConnectError;
}

describe("SqlService.Query over gRPC", () => {
  it("returns columns, typed values, truncated and the position", async () => {
    const res = await client.query({
      sql: "SELECT wallet_id, owner_id, balance_cents, rate, avatar FROM wallets ORDER BY wallet_id",
      maxRows: 2,
    });
    expect(res.columns).toEqual(["wallet_id", "owner_id", "balance_cents", "rate", "avatar"]);
    expect(res.rows.map((row) => row.values.map((v) => v.kind))).toEqual([
      [
        { case: "text", value: "w1" },
        { case: "text", value: "alice" },
        { case: "integer", value: 1500n },
        { case: "real", value: 0.25 },
        { case: "blob", value: Uint8Array.of(0, 0xff, 0x10) },
      ],
      [
        { case: "text", value: "w2" },
        { case: "text", value: "bob" },
        { case: "integer", value: 9223372036854775807n },
        { case: "real", value: 2 },
        { case: "nullValue", value: true },
      ],
    ]);
    expect(res.truncated).toBe(true);
    expect(res.position).toBe(10n);
  });

  it("refuses a write with INVALID_ARGUMENT and says why", async () => {
    const err = await failure({ sql: "DELETE FROM wallets" });
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("DELETE refused: the statement writes to the database, and queries only read");
  });

  it("passes on SQLite's message and code as INVALID_ARGUMENT", async () => {
    const err = await failure({ sql: "SELEC 1" });
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe('SQLite refused the statement: near "SELEC": syntax error (SQLITE_ERROR)');
  });

  it.each([
    ["max_rows 10001", { maxRows: 10_001 }, "max_rows must be between 1 and 10000 (0 means 1000), got 10001"],
    ["max_rows -1", { maxRows: -1 }, "max_rows must be between 1 and 10000 (0 means 1000), got -1"],
    ["timeout_ms 30001", { timeoutMs: 30_001 }, "timeout_ms must be between 1 and 30000 (0 means 2000), got 30001"],
    ["min_position 2^60", { minPosition: 2n ** 60n }, `min_position ${2n ** 60n} is beyond any stream position`],
  ])("refuses %s with INVALID_ARGUMENT", async (_, limits, message) => {
    const err = await failure({ sql: "SELECT 1", ...limits });
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(message);
  });

  it("stops a runaway statement with DEADLINE_EXCEEDED within the cap", async () => {
    const started = Date.now();
    const err = await failure({
      sql: "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r",
      timeoutMs: 500,
    });
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(err.rawMessage).toBe("the statement ran past its time cap of 500 ms and was stopped");
    expect(Date.now() - started).toBeLessThan(2_500);
    expect((await client.query({ sql: "SELECT 1" })).rows).toHaveLength(1);
  });

  it("caps the statement at the call's own deadline when that is shorter", async () => {
    const started = Date.now();
    const err: unknown = await client
      .query({ sql: "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r", timeoutMs: 30_000 }, { timeoutMs: 300 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await client.query({ sql: "SELECT 1" })).rows).toHaveLength(1);
  });

  it("answers DEADLINE_EXCEEDED when min_position is not reached in time", async () => {
    const err = await failure({ sql: "SELECT 1", minPosition: 11n, timeoutMs: 100 });
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(err.rawMessage).toMatch(/^read model artworks is at position 10, not yet at 11/);
    expect((await client.query({ sql: "SELECT 1", minPosition: 10n })).position).toBe(10n);
  });
});

describe("SqlService.Query without a read-model file", () => {
  it("answers UNAVAILABLE", async () => {
    const other = await createApiServer({
      routes: (router) => {
        registerSql(router, missing);
      },
      log: pino({ level: "silent" }),
    });
    const otherSessions = new Http2SessionManager(other.url);
    try {
      const otherClient = createClient(SqlService, createGrpcTransport({ baseUrl: other.url, sessionManager: otherSessions }));
      const err: unknown = await otherClient.query({ sql: "SELECT 1" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.Unavailable);
      expect((err as ConnectError).rawMessage).toMatch(/cannot be opened: .*\(SQLITE_CANTOPEN\)/);
    } finally {
      otherSessions.abort();
      await other.close();
    }
  });
});
