import { describe, expect, it } from "vitest";
import { decodeCommit, encodeCommit, type CommitBody } from "./commit-codec.js";

describe("commit codec", () => {
  it("round-trips events and metadata", () => {
    const body: CommitBody = {
      events: [
        { type: "test.v1.Opened", schemaVersion: 1, payload: new Uint8Array([1, 2, 3]) },
        { type: "test.v1.Changed", schemaVersion: 2, payload: new Uint8Array() },
      ],
      metadata: {
        commandId: "0b7f2f0e-4a37-4c1e-9d55-0f3a2d1c9b8e",
        actor: "user:ada",
        correlationId: "corr-1",
        causationId: "cause-1",
        recordedAt: new Date("2026-11-22T10:11:12.345Z"),
      },
    };
    expect(decodeCommit(encodeCommit(body))).toEqual(body);
  });

  it("refuses bytes that are not a commit", () => {
    expect(() => decodeCommit(new Uint8Array([0xff, 0xff, 0xff]))).toThrow();
  });
});
