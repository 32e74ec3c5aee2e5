// Seeded fuzzing of the command API over raw HTTP/2: thousands of malformed requests (random bytes, mutations,
// truncations, wrong wire types, invalid UTF-8, overlong varints, deep nesting, broken envelopes and compression,
// unknown and misspelt JSON) over gRPC, gRPC-Web, Connect binary, Connect JSON and inside Execute streams.
// None may be answered INTERNAL or UNKNOWN, reset, or crash the server; nothing may be appended to the stream,
// nothing logged as an error; and a good command still goes through afterwards.
//
// Every request is addressed to an aggregate that does not exist through an RPC that cannot create one (Execute
// frames also carry a command id that is no UUID), so even a mutation that happens to decode cannot append.
//
// FOLDLINE_FUZZ_SEED and FOLDLINE_FUZZ_CASES change the seed and the number of cases; a failure prints the seed,
// the case number and the bytes, and every case can be rerun alone from the seed and its number.
import { randomUUID } from "node:crypto";
import type * as http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary, toJsonString, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ListForSaleRequestSchema,
  SetRoyaltySplitRequestSchema,
  TransferOwnershipRequestSchema,
} from "../gen/foldline/marketplace/v1/artwork_service_pb.js";
import { ExecuteRequestSchema, ExecuteResponseSchema } from "../gen/foldline/marketplace/v1/command_service_pb.js";
import { DepositRequestSchema, ReserveFundsRequestSchema, WithdrawRequestSchema } from "../gen/foldline/marketplace/v1/wallet_service_pb.js";
import { HealthCheckRequestSchema } from "../gen/grpc/health/v1/health_pb.js";
import { startTestBed, type TestBed } from "./harness/app.js";
import { connectError, envelope, envelopes, grpcStatus, grpcWebStatus, openRawSession, type RawAnswer, type RawSession } from "./harness/raw-http2.js";
import { commitsBetween } from "./harness/commits.js";

const seed = Number(process.env.FOLDLINE_FUZZ_SEED ?? 20_260_717);
const caseCount = Number(process.env.FOLDLINE_FUZZ_CASES ?? 6_000);
const concurrency = 32;
const sessionCount = 4;

interface LogLine {
  readonly level: number;
  readonly msg: string;
}
const logs: LogLine[] = [];
let bed: TestBed;
const sessions: RawSession[] = [];
// Ids of aggregates that never exist, and of the wallet the last check deposits to.
const run = randomUUID().slice(0, 8);
const absent = (kind: string): string => `nx-${kind}-${run}`;
const fixtureWallet = `fixture-wallet-of-the-fuzz-spec-${run}`;

/** A small fast PRNG (mulberry32), one per case so that each case reproduces alone. */
type Rng = (n: number) => number;
function rngFor(caseNumber: number): Rng {
  let state = (seed ^ Math.imul(caseNumber + 1, 0x9e3779b1)) >>> 0;
  return (n: number) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) % 4_294_967_296) % n;
  };
}
const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng(items.length)] as T;
const randomBytes = (rng: Rng, n: number): Uint8Array => Uint8Array.from({ length: n }, () => rng(256));
const concat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));

/** A unary RPC to fuzz, with valid requests for it. */
interface Target {
  readonly path: string;
  readonly schema: DescMessage;
  readonly valid: () => MessageInitShape<DescMessage>;
}

const metadata = () => ({ commandId: randomUUID(), actor: "ann", correlationId: "fuzz" });
const targets: readonly Target[] = [
  { path: "/foldline.marketplace.v1.WalletService/Deposit", schema: DepositRequestSchema, valid: () => ({ metadata: metadata(), walletId: absent("w"), amountCents: 500n }) },
  { path: "/foldline.marketplace.v1.WalletService/Withdraw", schema: WithdrawRequestSchema, valid: () => ({ metadata: metadata(), walletId: absent("w"), amountCents: 70n }) },
  {
    path: "/foldline.marketplace.v1.WalletService/ReserveFunds",
    schema: ReserveFundsRequestSchema,
    valid: () => ({ metadata: metadata(), walletId: absent("w"), reservationId: "r-1", amountCents: 9n }),
  },
  {
    path: "/foldline.marketplace.v1.ArtworkService/ListForSale",
    schema: ListForSaleRequestSchema,
    valid: () => ({ metadata: metadata(), artworkId: absent("a"), priceCents: 12_345n }),
  },
  {
    path: "/foldline.marketplace.v1.ArtworkService/SetRoyaltySplit",
    schema: SetRoyaltySplitRequestSchema,
    valid: () => ({ metadata: metadata(), artworkId: absent("a"), royaltySplit: [{ recipientId: "ann", basisPoints: 500 }, { recipientId: "bé", basisPoints: 20 }] }),
  },
  {
    path: "/foldline.marketplace.v1.ArtworkService/TransferOwnership",
    schema: TransferOwnershipRequestSchema,
    valid: () => ({ metadata: metadata(), artworkId: absent("a"), newOwnerId: "carol" }),
  },
  { path: "/grpc.health.v1.Health/Check", schema: HealthCheckRequestSchema, valid: () => ({ service: "foldline.none" }) },
];

/** A valid Execute frame whose command can never be accepted: its command id is no UUID. */
function executeFrame(rng: Rng): MessageInitShape<typeof ExecuteRequestSchema> {
  const md = { commandId: "fuzz-not-a-uuid", actor: "ann" };
  return pick(rng, [
    { command: { case: "deposit", value: { metadata: md, walletId: absent("w"), amountCents: 5n } } },
    { command: { case: "withdraw", value: { metadata: md, walletId: absent("w"), amountCents: 5n } } },
    { command: { case: "listForSale", value: { metadata: md, artworkId: absent("a"), priceCents: 5n } } },
    { command: { case: "openWallet", value: { metadata: md, walletId: absent("o"), ownerId: "ann" } } },
    { command: { case: "mintArtwork", value: { metadata: md, artworkId: absent("m"), artistId: "ann", title: "t", contentHash: "h" } } },
  ] as MessageInitShape<typeof ExecuteRequestSchema>[]);
}

/** A malformed protobuf message made from a valid one. */
function mutateBinary(rng: Rng, valid: Uint8Array): Uint8Array {
  const data = Uint8Array.from(valid);
  switch (rng(11)) {
    case 0:
      return randomBytes(rng, rng(64));
    case 1: {
      for (let k = 0, n = 1 + rng(4); k < n && data.length > 0; k++) data[rng(data.length)] = rng(256);
      return data;
    }
    case 2:
      return data.subarray(0, rng(Math.max(1, data.length)));
    case 3: {
      const at = rng(data.length + 1);
      return concat(data.subarray(0, at), randomBytes(rng, 1 + rng(8)), data.subarray(at));
    }
    case 4:
      // An overlong varint in a known or unknown field.
      return concat(data, Uint8Array.from([pick(rng, [0x18, 0x08, 0xa0])]), new Uint8Array(10 + rng(4)).fill(0xff), Uint8Array.of(0x01));
    case 5: {
      // A known field number with another wire type, and something that wire type could carry.
      const field = 1 + rng(4);
      const wire = pick(rng, [0, 1, 2, 3, 5]);
      const payload = wire === 0 ? [0x1c] : wire === 1 ? [1, 2, 3, 4, 5, 6, 7, 8] : wire === 2 ? [0x01, 0x41] : wire === 3 ? [(field << 3) | 4] : [1, 2, 3, 4];
      return concat(data, Uint8Array.of((field << 3) | wire, ...payload));
    }
    case 6: {
      // Invalid UTF-8 in a string field: overlong, surrogate, truncated, stray continuation bytes.
      const bad = pick(rng, [[0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x80], [0xff, 0xfe], [0xf8, 0x88, 0x80, 0x80, 0x80]]);
      return concat(data, Uint8Array.of((2 << 3) | 2, bad.length, ...bad));
    }
    case 7: {
      // Unknown groups nested deep, balanced or not.
      const depth = pick(rng, [33, 100, 101, 1_000, 20_000]);
      const open = new Uint8Array(depth * 2).map((_, i) => (i % 2 === 0 ? 0x9b : 0x06));
      const close = new Uint8Array(rng(2) === 0 ? depth * 2 : rng(depth) * 2).map((_, i) => (i % 2 === 0 ? 0x9c : 0x06));
      return concat(data, open, close);
    }
    case 8: {
      // A known message field nested in length-delimited layers of itself (metadata in metadata in …).
      let inner: Uint8Array = Uint8Array.of(0x0a, 0x01, 0x61);
      for (let k = 0, n = 30 + rng(100); k < n; k++) inner = concat(Uint8Array.of(0x0a), lengthVarint(inner.length), inner);
      return concat(inner, data);
    }
    case 9:
      // A length that promises more than there is.
      return concat(data, Uint8Array.of((2 << 3) | 2), lengthVarint(1_000 + rng(1_000_000)), randomBytes(rng, rng(16)));
    default:
      // Wire types 6 and 7, field number 0, an end group out of nowhere.
      return concat(data, pick(rng, [Uint8Array.of(0x1e, 1), Uint8Array.of(0x1f), Uint8Array.of(0x00, 0x01), Uint8Array.of(0x9c, 0x06), Uint8Array.of(0x04)]));
  }
}

function lengthVarint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Uint8Array.from(out);
}

/** A malformed JSON message made from a valid one. */
function mutateJson(rng: Rng, valid: string): Uint8Array {
  const text = Buffer.from(valid);
  switch (rng(8)) {
    case 0:
      return Buffer.from(valid.replace(/^\{/, `{"${pick(rng, ["bogus", "expectedVersoin", "amount_cent", "walletID", "x".repeat(5_000)])}":${pick(rng, ["1", "true", '"x"', "{}", "null"])},`));
    case 1:
      return Buffer.from(valid.replace(/"metadata":\{/, `"metadata":{"expectedVersoin":"1",`));
    case 2: {
      // Invalid UTF-8 inside a string, or around it.
      const at = rng(text.length + 1);
      return concat(text.subarray(0, at), Uint8Array.from(pick(rng, [[0xff], [0xc0, 0xaf], [0xed, 0xb0, 0x80], [0xe2, 0x28, 0xa1]])), text.subarray(at));
    }
    case 3:
      return text.subarray(0, rng(text.length));
    case 4: {
      for (let k = 0, n = 1 + rng(3); k < n; k++) text[rng(text.length)] = 0x20 + rng(95);
      return text;
    }
    case 5: {
      // Values of the wrong type, huge numbers, deep nesting.
      const value = pick(rng, ["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", "1e400", "-0", '"9223372036854775808"', "{}", "[]", "1.5", '"\\ud800"', "null"]);
      return Buffer.from(valid.replace(/("(?:amountCents|priceCents|walletId|artworkId|service|newOwnerId)":)("[^"]*"|[^,}]*)/, `$1${value}`));
    }
    case 6:
      return Buffer.from("[".repeat(1 + rng(50_000)));
    default:
      return randomBytes(rng, rng(48));
  }
}

/** One fuzz case: the request it sends, over which protocol. */
interface FuzzCase {
  readonly protocol: string;
  readonly path: string;
  readonly headers: http2.OutgoingHttpHeaders;
  readonly body: Uint8Array[];
}

const protocols = ["grpc", "grpc-web", "connect-proto", "connect-json", "execute-grpc", "execute-connect-proto", "execute-connect-json"] as const;

function fuzzCase(caseNumber: number): FuzzCase {
  const rng = rngFor(caseNumber);
  const protocol = pick(rng, protocols);
  if (protocol.startsWith("execute")) return executeCase(rng, protocol);
  const target = pick(rng, targets);
  const valid = create(target.schema, target.valid());
  const path = target.path;
  if (protocol === "connect-json") {
    return { protocol, path, headers: { "content-type": "application/json" }, body: [mutateJson(rng, toJsonString(target.schema, valid))] };
  }
  const message = mutateBinary(rng, toBinary(target.schema, valid));
  if (protocol === "connect-proto") {
    return rng(8) === 0
      ? { protocol, path, headers: { "content-type": "application/proto", "content-encoding": "gzip" }, body: [rng(2) === 0 ? gzipSync(message) : randomBytes(rng, 20)] }
      : { protocol, path, headers: { "content-type": "application/proto" }, body: split(rng, message) };
  }
  const type = protocol === "grpc" ? "application/grpc" : "application/grpc-web+proto";
  const { frame, headers } = framed(rng, message);
  return { protocol, path, headers: { "content-type": type, ...headers }, body: split(rng, frame) };
}

function executeCase(rng: Rng, protocol: string): FuzzCase {
  const json = protocol === "execute-connect-json";
  const type = protocol === "execute-grpc" ? "application/grpc" : json ? "application/connect+json" : "application/connect+proto";
  const frames: Uint8Array[] = [];
  let headers: http2.OutgoingHttpHeaders = {};
  const count = 1 + rng(4);
  const bad = rng(count);
  for (let i = 0; i < count; i++) {
    const valid = create(ExecuteRequestSchema, executeFrame(rng));
    if (json) {
      const text = toJsonString(ExecuteRequestSchema, valid);
      frames.push(envelope(i === bad ? mutateJson(rng, text) : Buffer.from(text)));
    } else if (i === bad) {
      const f = framed(rng, mutateBinary(rng, toBinary(ExecuteRequestSchema, valid)));
      frames.push(f.frame);
      headers = f.headers;
    } else {
      frames.push(envelope(toBinary(ExecuteRequestSchema, valid)));
    }
  }
  const encodingHeader = type === "application/grpc" ? "grpc-encoding" : "connect-content-encoding";
  const renamed = headers["grpc-encoding"] === undefined ? {} : { [encodingHeader]: headers["grpc-encoding"] };
  return { protocol, path: "/foldline.marketplace.v1.CommandService/Execute", headers: { "content-type": type, ...renamed }, body: split(rng, concat(...frames)) };
}

/** `message` in an envelope, now and then a broken one or a compressed one. */
function framed(rng: Rng, message: Uint8Array): { frame: Uint8Array; headers: http2.OutgoingHttpHeaders } {
  switch (rng(10)) {
    case 0: {
      const frame = envelope(message);
      new DataView(frame.buffer).setUint32(1, Math.max(0, message.length + pick(rng, [-3, -1, 1, 7, 100_000])));
      return { frame, headers: {} };
    }
    case 1:
      return { frame: envelope(message, 0x01), headers: {} };
    case 2:
      return { frame: envelope(rng(2) === 0 ? gzipSync(message) : randomBytes(rng, 30), 0x01), headers: { "grpc-encoding": "gzip" } };
    case 3:
      return { frame: envelope(message, pick(rng, [0x02, 0x80, 0x03, 0xff])), headers: {} };
    case 4:
      return { frame: envelope(message).subarray(0, rng(message.length + 5)), headers: {} };
    default:
      return { frame: envelope(message), headers: {} };
  }
}

/** `data` in 1 to 4 writes, so that envelopes arrive split across chunks. */
function split(rng: Rng, data: Uint8Array): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (let n = rng(4); n > 0 && at < data.length; n--) {
    const next = at + 1 + rng(data.length - at);
    parts.push(data.subarray(at, next));
    at = next;
  }
  parts.push(data.subarray(at));
  return parts;
}

// The codes no malformed request may get: they say the server failed.
const faults: readonly number[] = [Code.Internal, Code.Unknown];

/** What is wrong with an answer, or undefined; `codes` collects the codes seen. */
function verdict(fuzz: FuzzCase, answer: RawAnswer, codes: Map<string, number>): string | undefined {
  const seen = (code: string): void => {
    codes.set(`${fuzz.protocol} ${code}`, (codes.get(`${fuzz.protocol} ${code}`) ?? 0) + 1);
  };
  if (answer.rstCode !== 0) return `stream reset with code ${answer.rstCode}`;
  const type = answer.headers["content-type"] ?? "";
  if (type.startsWith("application/grpc")) {
    const { code } = type.startsWith("application/grpc-web") ? grpcWebStatus(answer) : grpcStatus(answer);
    if (code === undefined) return `no grpc-status (HTTP ${answer.status})`;
    seen(Code[code] ?? String(code));
    if (faults.includes(code)) return `grpc-status ${code}`;
    if (fuzz.protocol === "execute-grpc") return refusedInPlace(answer, seen);
    // grpc-status 0 is OK, which Code has no member for.
    return code === 0 && !fuzz.path.includes("Health") ? "a command was accepted" : undefined;
  }
  if (answer.status >= 500) return `HTTP ${answer.status}`;
  const err = connectError(answer);
  if (err !== undefined) {
    seen(err.code);
    if (err.code === "internal" || err.code === "unknown") return `Connect error ${err.code}: ${err.message}`;
  } else {
    seen(`HTTP ${answer.status}`);
    // Only a health check, whose service a mutation may have made "", or a stream whose commands were all
    // answered in place, may succeed.
    if (!fuzz.path.includes("Health") && !fuzz.protocol.startsWith("execute")) return `HTTP ${answer.status} without an error`;
  }
  if (fuzz.protocol === "execute-connect-proto") return refusedInPlace(answer, seen);
  if (fuzz.protocol === "execute-connect-json") {
    for (const e of envelopes(answer.body).filter((f) => f.flags === 0)) {
      const outcome = JSON.parse(Buffer.from(e.data).toString("utf8")) as { error?: { code: string } };
      seen(`in place ${outcome.error?.code ?? "accepted"}`);
      if (outcome.error === undefined || outcome.error.code === "internal") return `answered in place: ${JSON.stringify(outcome)}`;
    }
  }
  return undefined;
}

/** Checks the answers of an Execute stream given in place: each a refusal, none INTERNAL. */
function refusedInPlace(answer: RawAnswer, seen: (code: string) => void): string | undefined {
  for (const e of envelopes(answer.body).filter((f) => f.flags === 0)) {
    const { outcome } = fromBinary(ExecuteResponseSchema, e.data);
    seen(`in place ${outcome.case === "error" ? outcome.value.code : "accepted"}`);
    if (outcome.case !== "error" || outcome.value.code === "internal") return `answered in place: ${outcome.case ?? "nothing"}`;
  }
  return undefined;
}

beforeAll(async () => {
  const log = pino({ level: "warn" }, { write: (line: string) => logs.push(JSON.parse(line) as LogLine) });
  bed = await startTestBed("foldline-fuzz-", () => ({}), log);
  await bed.c.wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId: fixtureWallet, ownerId: "ann" });
  for (let i = 0; i < sessionCount; i++) sessions.push(await openRawSession(bed.app.url));
});
afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close()));
  await bed.close();
});

describe("fuzzed malformed requests", () => {
  it(`are refused without INTERNAL, crash, reset, append or error log: ${caseCount} cases, seed ${seed}`, { timeout: 120_000 }, async () => {
    const before = await bed.app.streams.store.head();
    const failures: string[] = [];
    let failed = 0;
    const codes = new Map<string, number>();
    let next = 0;
    const started = Date.now();
    const worker = async (w: number): Promise<void> => {
      const session = sessions[w % sessionCount];
      if (session === undefined) return;
      for (let i = next++; i < caseCount; i = next++) {
        const fuzz = fuzzCase(i);
        let problem: string | undefined;
        try {
          problem = verdict(fuzz, await session.call(fuzz.path, fuzz.headers, fuzz.body), codes);
        } catch (err) {
          problem = `no answer: ${(err as Error).message}`;
        }
        if (problem !== undefined) failed++;
        if (problem !== undefined && failures.length < 10) {
          const bytes = Buffer.concat(fuzz.body).toString("hex");
          failures.push(`seed ${seed} case ${i} (${fuzz.protocol} ${fuzz.path} ${JSON.stringify(fuzz.headers)}): ${problem}; body ${bytes.slice(0, 400)}${bytes.length > 400 ? "…" : ""}`);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
    const ms = Date.now() - started;
    console.log(`fuzz: ${caseCount} cases, seed ${seed}, ${ms} ms, ${failed} failed; answers: ${JSON.stringify(Object.fromEntries([...codes].sort()))}`);

    expect(failures, `${failed} of ${caseCount} cases failed; the first:\n${failures.join("\n")}`).toEqual([]);
    expect(logs.filter((l) => l.level >= 50), "error-level logs").toEqual([]);
    expect(await bed.app.streams.store.head()).toBe(before);
    // The server still serves: a good command goes through, on a session that carried fuzz.
    const good = toBinary(DepositRequestSchema, create(DepositRequestSchema, { metadata: { commandId: randomUUID() }, walletId: fixtureWallet, amountCents: 1n }));
    const answer = await sessions[0]?.call("/foldline.marketplace.v1.WalletService/Deposit", { "content-type": "application/grpc" }, [envelope(good)]);
    expect(answer && grpcStatus(answer)).toEqual({ code: 0, message: "" });
    expect(await commitsBetween(bed.app.streams.store, before)).toBe(1);
  });
});
