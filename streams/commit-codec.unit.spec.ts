import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CommitSchema } from "../gen/foldline/store/v1/commit_pb.js";
import { decodeCommit, decodeCommitAsWritten, decodeCommitReflective, encodeCommit, encodeCommitReflective, type CommitBody } from "./commit-codec.js";

const body = (over: Partial<CommitBody["metadata"]> = {}, events?: CommitBody["events"]): CommitBody => ({
  events: events ?? [
    { type: "test.v1.Opened", schemaVersion: 1, payload: new Uint8Array([1, 2, 3]) },
    { type: "test.v1.Changed", schemaVersion: 2, payload: new Uint8Array() },
  ],
  metadata: {
    commandId: "0b7f2f0e-4a37-4c1e-9d55-0f3a2d1c9b8e",
    actor: "user:ada",
    correlationId: "corr-1",
    causationId: "cause-1",
    recordedAt: new Date("2026-11-22T10:11:12.345Z"),
    aggregateVersion: 7,
    ...over,
  },
});
const plain = (b: CommitBody): CommitBody => ({
  ...b,
  events: b.events.map((e) => ({ ...e, payload: new Uint8Array(e.payload) })),
});

describe("commit codec", () => {
  it("round-trips events and metadata", () => {
    expect(plain(decodeCommit(encodeCommit(body())))).toEqual(body());
  });

  it.each([
    ["a typical commit", body()],
    ["empty optional metadata", body({ actor: "", correlationId: "", causationId: "" })],
    ["no aggregate version", body({ aggregateVersion: 0 })],
    ["a large aggregate version", body({ aggregateVersion: 2 ** 40 + 3 })],
    ["a whole second", body({ recordedAt: new Date("2026-01-01T00:00:00.000Z") })],
    ["the epoch", body({ recordedAt: new Date(0) })],
    ["before the epoch", body({ recordedAt: new Date(-1_500) })],
    ["non-ASCII text", body({ actor: "usér:Ada Lovelace ✓ 🎨" }, [{ type: "tÿpe", schemaVersion: 0, payload: new Uint8Array(0) }])],
    [
      "large payloads and versions",
      body({}, [
        { type: "t", schemaVersion: 300_000, payload: new Uint8Array(70_000).fill(7) },
        { type: "", schemaVersion: 1, payload: new Uint8Array(200).fill(1) },
      ]),
    ],
    ["fifty events", body({}, Array.from({ length: 50 }, (_, i) => ({ type: `t${i}`, schemaVersion: i, payload: new Uint8Array(i) })))],
  ])("writes the same bytes as protobuf-es for %s", (_, b) => {
    expect(Buffer.from(encodeCommit(b)).equals(Buffer.from(encodeCommitReflective(b)))).toBe(true);
    expect(plain(decodeCommit(encodeCommit(b)))).toEqual(plain(b));
  });

  it("reads the commits it writes on its fast path, and leaves the rest to the general reader", () => {
    const random = prng(11);
    const ascii = (): string => random.text().replace(/[^ -~]/g, "x");
    for (let i = 0; i < 2_000; i++) {
      const b = body(
        { commandId: ascii(), actor: ascii(), correlationId: ascii(), causationId: ascii(), recordedAt: new Date(random.int(2 ** 41)), aggregateVersion: random.int(2 ** 40) },
        Array.from({ length: random.int(4) }, () => ({ type: ascii(), schemaVersion: [0, 1, 2 ** 32 - 1][random.int(3)] ?? 0, payload: random.bytes(random.int(20)) })),
      );
      const fast = decodeCommitAsWritten(encodeCommit(b));
      expect(fast === undefined ? undefined : plain(fast)).toEqual(plain(b));
    }
    // Not ASCII, or a field the writer does not write: the general reader's.
    expect(decodeCommitAsWritten(encodeCommit(body({ actor: "ädä" })))).toBeUndefined();
    expect(decodeCommitAsWritten(new Uint8Array([...encodeCommit(body()), 0x38, 0x01]))).toBeUndefined();
    expect(plain(decodeCommit(encodeCommit(body({ actor: "ädä" }))))).toEqual(body({ actor: "ädä" }));
  });

  it("refuses bytes that are not a commit", () => {
    expect(() => decodeCommit(new Uint8Array([0xff, 0xff, 0xff]))).toThrow();
  });

  it("reads what protobuf-es reads from random commits, merged ones and ones with unknown fields", () => {
    const random = prng(1);
    for (let i = 0; i < 3_000; i++) {
      let bytes = randomCommit(random);
      // Two messages one after the other are one message: the metadata given twice is merged.
      if (random.int(4) === 0) bytes = concat(bytes, randomCommit(random));
      if (random.int(3) === 0) bytes = concat(bytes, unknownField(random));
      expect(comparable(() => decodeCommit(bytes))).toEqual(comparable(() => decodeCommitReflective(bytes)));
    }
  });

  it("succeeds and fails as protobuf-es does on damaged and random bytes", () => {
    const random = prng(2);
    let failures = 0;
    for (let i = 0; i < 20_000; i++) {
      const bytes = damaged(random, randomCommit(random));
      const reference = comparable(() => decodeCommitReflective(bytes));
      if (reference === "throws") failures++;
      expect(comparable(() => decodeCommit(bytes))).toEqual(reference);
    }
    // Both outcomes were reached often, so that the equality above means something.
    expect(failures).toBeGreaterThan(2_000);
    expect(failures).toBeLessThan(18_000);
  });
});

/** A small deterministic generator, so that a failure can be replayed. */
function prng(seed: number): { int(below: number): number; bytes(n: number): Uint8Array; text(): string } {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const int = (below: number): number => Math.floor(next() * below);
  const alphabet = ["a", "Z", "0", "-", ":", "é", "✓", "🎨", " ", ""];
  return {
    int,
    bytes: (n) => Uint8Array.from({ length: n }, () => int(256)),
    text: () => Array.from({ length: int(12) }, () => alphabet[int(alphabet.length)] ?? "").join(""),
  };
}

type Random = ReturnType<typeof prng>;

function randomCommit(random: Random): Uint8Array {
  const big = (): bigint => [0n, 1n, 127n, 128n, 2n ** 53n + 1n, 2n ** 63n - 1n, BigInt(random.int(2 ** 31))][random.int(7)] ?? 0n;
  return toBinary(
    CommitSchema,
    create(CommitSchema, {
      events: Array.from({ length: random.int(4) }, () => ({
        type: random.text(),
        schemaVersion: [0, 1, 300, 2 ** 32 - 1][random.int(4)] ?? 0,
        payload: random.bytes(random.int(20)),
      })),
      ...(random.int(5) === 0
        ? {}
        : {
            metadata: {
              commandId: random.text(),
              actor: random.text(),
              correlationId: random.text(),
              causationId: random.text(),
              ...(random.int(4) === 0
                ? {}
                : { recordedAt: { seconds: random.int(2) === 0 ? big() : -big(), nanos: random.int(1_000_000_000) } }),
              aggregateVersion: big() * (random.int(2) === 0 ? 1n : 2n),
            },
          }),
    }),
  );
}

/** A field this version does not know, of every wire type, nested groups included. */
function unknownField(random: Random): Uint8Array {
  const field = 7 + random.int(100);
  switch (random.int(5)) {
    case 0:
      return concat(tag(field, 0), new Uint8Array([0x96, 0x01]));
    case 1:
      return concat(tag(field, 1), random.bytes(8));
    case 2:
      return concat(tag(field, 2), new Uint8Array([3]), random.bytes(3));
    case 3:
      return concat(tag(field, 5), random.bytes(4));
    default:
      return concat(tag(field, 3), tag(field + 1, 0), new Uint8Array([5]), tag(field, 4));
  }
}

function tag(field: number, wireType: number): Uint8Array {
  const out: number[] = [];
  let v = (field << 3) | wireType;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return Uint8Array.from(out);
}

/** `bytes` with a few bytes changed, cut short, or replaced by noise. */
function damaged(random: Random, bytes: Uint8Array): Uint8Array {
  switch (random.int(4)) {
    case 0:
      return random.bytes(random.int(40));
    case 1:
      return bytes.subarray(0, random.int(bytes.length + 1));
    default: {
      const out = Uint8Array.from(bytes);
      for (let k = 1 + random.int(3); k > 0 && out.length > 0; k--) out[random.int(out.length)] = random.int(256);
      return out;
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

/** A decode's outcome in a form `toEqual` compares exactly: times as numbers (NaN included), payloads as arrays. */
function comparable(decode: () => CommitBody): unknown {
  let b: CommitBody;
  try {
    b = decode();
  } catch {
    return "throws";
  }
  return {
    events: b.events.map((e) => ({ type: e.type, schemaVersion: e.schemaVersion, payload: [...e.payload] })),
    metadata: { ...b.metadata, recordedAt: b.metadata.recordedAt.getTime() },
  };
}
