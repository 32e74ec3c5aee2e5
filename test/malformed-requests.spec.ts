// Requests that no generated client sends, written byte by byte over raw HTTP/2: messages that cannot be decoded,
// fields with the wrong wire type, unknown or misspelt JSON fields, invalid UTF-8, oversized echoes, clients that
// hang up. Each is refused as INVALID_ARGUMENT with a short message (or ends quietly, for a client that left),
// nothing is appended, nothing is logged as an error, and the server answers a good command afterwards.
import { randomUUID } from "node:crypto";
import { gzipSync } from "node:zlib";
import * as http2 from "node:http2";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SqlService } from "../gen/foldline/analytics/v1/sql_service_pb.js";
import { ExecuteRequestSchema, ExecuteResponseSchema } from "../gen/foldline/marketplace/v1/command_service_pb.js";
import { DepositRequestSchema } from "../gen/foldline/marketplace/v1/wallet_service_pb.js";
import { startTestBed, type TestBed } from "./harness/app.js";
import {
  connectError,
  envelope,
  envelopes,
  grpcStatus,
  grpcWebStatus,
  openRawSession,
  type RawAnswer,
  type RawSession,
} from "./harness/raw-http2.js";
import { commitsBetween } from "./harness/commits.js";

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly err?: { readonly message?: string; readonly code?: string };
}

const logs: LogLine[] = [];
let bed: TestBed;
let raw: RawSession;
const wallet = `w-${randomUUID().slice(0, 8)}`;

const deposit = "/foldline.marketplace.v1.WalletService/Deposit";
const execute = "/foldline.marketplace.v1.CommandService/Execute";
const grpc = { "content-type": "application/grpc" };
const grpcWeb = { "content-type": "application/grpc-web+proto" };
const connectProto = { "content-type": "application/proto" };
const connectJson = { "content-type": "application/json" };
const connectStreamProto = { "content-type": "application/connect+proto" };
const connectStreamJson = { "content-type": "application/connect+json" };

type DepositInit = MessageInitShape<typeof DepositRequestSchema>;
const depositInit = (amountCents = 5n): DepositInit => ({ metadata: { commandId: randomUUID() }, walletId: wallet, amountCents });
const depositBytes = (init: DepositInit = depositInit()): Uint8Array => toBinary(DepositRequestSchema, create(DepositRequestSchema, init));
const executeBytes = (init: DepositInit = depositInit()): Uint8Array =>
  toBinary(ExecuteRequestSchema, create(ExecuteRequestSchema, { command: { case: "deposit", value: init } }));
const bytes = (...parts: (number[] | Uint8Array)[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));

const head = (): Promise<number> => bed.app.streams.store.head();
const errorLogs = (): LogLine[] => logs.filter((l) => l.level >= 50);

/** The refusal of an answer in whichever protocol it came: gRPC status, gRPC-Web trailer or Connect error. */
function refusal(answer: RawAnswer): { readonly code: string; readonly message: string } {
  const type = answer.headers["content-type"] ?? "";
  if (type.startsWith("application/grpc-web")) {
    const { code, message } = grpcWebStatus(answer);
    return { code: code === undefined ? "none" : (Code[code] ?? String(code)), message };
  }
  if (type.startsWith("application/grpc")) {
    const { code, message } = grpcStatus(answer);
    return { code: code === undefined ? "none" : (Code[code] ?? String(code)), message };
  }
  const err = connectError(answer);
  return err === undefined ? { code: "none", message: "" } : { code: err.code, message: err.message };
}

/** The Connect name of a code, as `refusal` reports Connect errors ("invalid_argument"). */
const connectName = (code: Code): string => Code[code].replace(/[A-Z]/g, (l, at: number) => (at === 0 ? "" : "_") + l.toLowerCase());

/** Sends `body` and expects INVALID_ARGUMENT with a message matching `message`, and nothing appended. */
async function expectInvalid(path: string, headers: http2.OutgoingHttpHeaders, body: Uint8Array, message: RegExp): Promise<string> {
  const before = await head();
  const answer = await raw.call(path, headers, body);
  const { code, message: text } = refusal(answer);
  expect([Code[Code.InvalidArgument], connectName(Code.InvalidArgument)], `${path} ${String(headers["content-type"])}: ${text}`).toContain(code);
  expect(text).toMatch(message);
  expect(text).not.toMatch(/parse binary|premature EOF|internal/);
  expect(text.length).toBeLessThan(400);
  expect(answer.rstCode).toBe(0);
  expect(await head()).toBe(before);
  return text;
}

beforeAll(async () => {
  const log = pino({ level: "debug" }, { write: (line: string) => logs.push(JSON.parse(line) as LogLine) });
  bed = await startTestBed("foldline-malformed-", (dir) => ({ PROJECTORS: "embedded", READ_MODEL_DB: join(dir, "read-models.sqlite") }), log);
  await bed.c.wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId: wallet, ownerId: "alice" });
  raw = await openRawSession(bed.app.url);
});
afterAll(async () => {
  await raw.close();
  await bed.close();
});

describe("a message that cannot be decoded", () => {
  it("is INVALID_ARGUMENT with a short message over gRPC, gRPC-Web and Connect, not INTERNAL with the parser's text", async () => {
    // A length-delimited field that promises more bytes than there are.
    const truncated = Uint8Array.from([0x0a, 0xff]);
    for (const headers of [grpc, grpcWeb]) {
      await expectInvalid(deposit, headers, bytes([0, 0, 0, 0, 1, 0xff]), /DepositRequest/);
      await expectInvalid(deposit, headers, envelope(truncated), /metadata \(field 1\).* past the end/);
    }
    await expectInvalid(deposit, connectProto, truncated, /metadata \(field 1\).* past the end/);
    await expectInvalid(deposit, connectProto, Uint8Array.from([0xff]), /DepositRequest/);
  });

  it("is refused for varints longer than 10 bytes, unknown wire types, field 0 and unmatched groups", async () => {
    const good = depositBytes();
    const cases: [Uint8Array, RegExp][] = [
      [bytes(good, [0x18], new Array<number>(10).fill(0xff), [0x01]), /varint/],
      [bytes(good, [0x1e, 0x01]), /wire type 6/],
      [bytes(good, [0x07, 0x01]), /field number 0/],
      [bytes(good, [0x9b, 0x06]), /group.*not closed|ends inside/],
      [bytes(good, [0x9c, 0x06]), /end of a group/],
      [bytes(good, [0x9b, 0x06, 0xa4, 0x06]), /group/],
    ];
    for (const [body, message] of cases) {
      await expectInvalid(deposit, grpc, envelope(body), message);
      await expectInvalid(deposit, connectProto, body, message);
    }
  });

  it("is refused when it nests unknown groups thousands deep", async () => {
    const depth = 5_000;
    const body = bytes(depositBytes(), new Array<number[]>(depth).fill([0x9b, 0x06]).flat(), new Array<number[]>(depth).fill([0x9c, 0x06]).flat());
    await expectInvalid(deposit, grpc, envelope(body), /nest/);
    await expectInvalid(deposit, connectProto, body, /nest/);
  });

  it("is refused when a string is not valid UTF-8", async () => {
    // wallet_id (field 2) as the bytes ff fe.
    const body = bytes(depositBytes({ ...depositInit(), walletId: "" }), [0x12, 0x02, 0xff, 0xfe]);
    await expectInvalid(deposit, grpc, envelope(body), /wallet_id \(field 2\) is not valid UTF-8/);
    await expectInvalid(deposit, connectProto, body, /wallet_id \(field 2\) is not valid UTF-8/);
    const nested = bytes([0x0a, 0x03, 0x2a, 0x01, 0xc3], [0x12, 0x01, 0x77]);
    await expectInvalid(deposit, grpc, envelope(nested), /metadata: actor \(field 5\) is not valid UTF-8/);
  });

  it("is refused when it is flagged compressed without an encoding, or does not decompress", async () => {
    await expectInvalid(deposit, grpc, envelope(depositBytes(), 1), /compress/);
    await expectInvalid(deposit, { ...grpc, "grpc-encoding": "gzip" }, envelope(Uint8Array.from([0x1f, 0x8b, 8, 0, 0]), 1), /decompress/);
    await expectInvalid(deposit, { ...connectProto, "content-encoding": "gzip" }, Uint8Array.from([0x1f, 0x8b, 8]), /decompress/);
    // A compressed message is checked like any other.
    const bad = gzipSync(bytes(depositBytes(), [0x1b, 0x1c]));
    await expectInvalid(deposit, { ...grpc, "grpc-encoding": "gzip" }, envelope(bad, 1), /amount_cents/);
    // And one that is fine goes through.
    const before = await head();
    const ok = await raw.call(deposit, { ...grpc, "grpc-encoding": "gzip" }, envelope(gzipSync(depositBytes()), 1));
    expect(grpcStatus(ok)).toEqual({ code: 0, message: "" });
    expect(await commitsBetween(bed.app.streams.store, before)).toBe(1);
  });

  it("on an Execute stream, answers the commands before it and then ends the stream INVALID_ARGUMENT, over gRPC and Connect", async () => {
    for (const headers of [grpc, connectStreamProto]) {
      const before = await head();
      // One write: the good command, the undecodable one and another good one arrive together.
      const body = bytes(envelope(executeBytes()), envelope(bytes([0x62, 0x05, 0x0a])), envelope(executeBytes()));
      const answer = await raw.call(execute, headers, body);
      const answers = envelopes(answer.body)
        .filter((e) => e.flags === 0)
        .map((e) => fromBinary(ExecuteResponseSchema, e.data).outcome.case);
      expect(answers, headers["content-type"]).toEqual(["deposit"]);
      const { code, message } = refusal(answer);
      expect([Code[Code.InvalidArgument], connectName(Code.InvalidArgument)]).toContain(code);
      expect(message).toMatch(/^request message 2 is not a valid foldline\.marketplace\.v1\.ExecuteRequest: /);
      expect(await commitsBetween(bed.app.streams.store, before)).toBe(1);
    }
  });
});

describe("a known field with the wrong wire type", () => {
  it("is refused, never read as another value: amount_cents as an empty group does not deposit 28 cents", async () => {
    const groupAmount = bytes(depositBytes({ ...depositInit(), amountCents: 0n }), [0x1b, 0x1c]);
    const message = /amount_cents \(field 3\) has wire type 3 .*int64.* wire type 0/;
    await expectInvalid(deposit, grpc, envelope(groupAmount), message);
    await expectInvalid(deposit, grpcWeb, envelope(groupAmount), message);
    await expectInvalid(deposit, connectProto, groupAmount, message);
    // amount_cents as 8 fixed bytes, wallet_id as a varint, metadata as a varint.
    await expectInvalid(deposit, grpc, envelope(bytes(depositBytes(), [0x19, 1, 0, 0, 0, 0, 0, 0, 0])), /amount_cents \(field 3\) has wire type 1/);
    await expectInvalid(deposit, grpc, envelope(bytes(depositBytes(), [0x10, 0x01])), /wallet_id \(field 2\) has wire type 0/);
    await expectInvalid(deposit, grpc, envelope(bytes([0x08, 0x01], depositBytes())), /metadata \(field 1\) has wire type 0/);
    // Inside an Execute stream too.
    const execBody = bytes([0x62, groupAmount.length], groupAmount);
    const answer = await raw.call(execute, grpc, envelope(execBody));
    expect(refusal(answer)).toMatchObject({ code: Code[Code.InvalidArgument], message: expect.stringMatching(/deposit: amount_cents/) as unknown });
  });
});

describe("Connect JSON", () => {
  const json = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value));

  it("refuses an unknown field, naming it", async () => {
    const text = await expectInvalid(deposit, connectJson, json({ ...jsonDeposit(), bogus: 1 }), /"bogus"/);
    expect(text).toMatch(/unknown/);
  });

  it("refuses a misspelt expectedVersion instead of dropping the caller's check", async () => {
    const request = jsonDeposit();
    await expectInvalid(deposit, connectJson, json({ ...request, metadata: { ...request.metadata, expectedVersoin: "1" } }), /"expectedVersoin"/);
    // Spelt right, the stale version is refused as it should be.
    const answer = await raw.call(deposit, connectJson, json({ ...request, metadata: { ...request.metadata, expectedVersion: "1" } }));
    expect(refusal(answer).code).toBe("failed_precondition");
  });

  it("refuses unknown fields inside Execute streams too", async () => {
    const frame = json({ deposit: { ...jsonDeposit(), bogus: true } });
    const before = await head();
    const answer = await raw.call(execute, connectStreamJson, envelope(frame));
    expect(refusal(answer)).toMatchObject({ code: "invalid_argument", message: expect.stringMatching(/"bogus"/) as unknown });
    expect(await head()).toBe(before);
  });

  it("refuses invalid UTF-8 instead of committing U+FFFD", async () => {
    const request = JSON.stringify({ ...jsonDeposit(), metadata: { commandId: randomUUID(), actor: "al@ice" } });
    const [left, right] = request.split("@") as [string, string];
    const body = bytes(Buffer.from(left), [0xff], Buffer.from(right));
    await expectInvalid(deposit, connectJson, body, /UTF-8/);
    await expectInvalid(execute, connectStreamJson, envelope(bytes(Buffer.from('{"deposit":'), body, Buffer.from("}"))), /UTF-8/);
  });
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

describe("a client that cancels an Execute stream", () => {
  it("is no error in the log", async () => {
    const errorsBefore = errorLogs().length;
    for (let i = 0; i < 5; i++) {
      const session = http2.connect(bed.app.url);
      session.on("error", () => undefined);
      const stream = session.request({ ":method": "POST", ":path": execute, ...grpc, te: "trailers" });
      stream.on("error", () => undefined);
      for (let k = 0; k < 20; k++) stream.write(envelope(executeBytes()));
      await sleep(i * 3);
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await sleep(50);
      session.destroy();
    }
    await sleep(300);
    expect(errorLogs().slice(errorsBefore)).toEqual([]);
  });
});

describe("afterwards", () => {
  it("has logged no error, and still accepts a good command", async () => {
    expect(errorLogs()).toEqual([]);
    // Commands of the streams cancelled above may still be landing: wait until the stream stands still.
    let before = await head();
    for (let still = 0; still < 5; ) {
      await sleep(100);
      const now = await head();
      still = now === before ? still + 1 : 0;
      before = now;
    }
    const answer = await raw.call(deposit, grpc, envelope(depositBytes()));
    expect(grpcStatus(answer)).toEqual({ code: 0, message: "" });
    expect(await commitsBetween(bed.app.streams.store, before)).toBe(1);
  });

  it("still answers a real fault INTERNAL, with nothing from inside, and logs it with its cause", async () => {
    const w = `int-${randomUUID()}`;
    await bed.app.streams.store.append(
      `ev.wallet.${w}`,
      [{ type: "foldline.marketplace.v1.NoSuchEvent", schemaVersion: 1, payload: new Uint8Array() }],
      { commandId: randomUUID() },
    );
    const errorsBefore = errorLogs().length;
    const answer = await raw.call(deposit, grpc, envelope(depositBytes({ ...depositInit(), walletId: w })));
    expect(grpcStatus(answer)).toEqual({ code: Code.Internal, message: "internal error" });
    const logged = errorLogs().slice(errorsBefore);
    expect(logged).toHaveLength(1);
    expect(logged[0]?.err?.message).toMatch(/NoSuchEvent/);
  });
});

/** A valid deposit in proto3 JSON. */
function jsonDeposit(): { metadata: { commandId: string }; walletId: string; amountCents: string } {
  return { metadata: { commandId: randomUUID() }, walletId: wallet, amountCents: "5" };
}
