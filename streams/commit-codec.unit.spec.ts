import { describe, expect, it } from "vitest";
import { decodeCommit, encodeCommit, encodeCommitReflective, type CommitBody } from "./commit-codec.js";

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

  it("refuses bytes that are not a commit", () => {
    expect(() => decodeCommit(new Uint8Array([0xff, 0xff, 0xff]))).toThrow();
  });
});
