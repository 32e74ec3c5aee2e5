import { MsgHdrsImpl } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { batchHeaders, type PublishGuards } from "./js-publisher.js";

/** The headers of a batch message as the client builds them (`headers()` makes an MsgHdrsImpl). */
function reference(guards: PublishGuards, batchId: string, seq: number, commit: boolean): Uint8Array {
  const h = new MsgHdrsImpl();
  if (guards.msgId !== undefined) h.set("Nats-Msg-Id", guards.msgId);
  if (guards.expectedLastSubjectSeq !== undefined) h.set("Nats-Expected-Last-Subject-Sequence", String(guards.expectedLastSubjectSeq));
  if (guards.expectedLastSubjectSeqSubject !== undefined) {
    h.set("Nats-Expected-Last-Subject-Sequence-Subject", guards.expectedLastSubjectSeqSubject);
  }
  h.set("Nats-Batch-Id", batchId);
  h.set("Nats-Batch-Sequence", String(seq));
  if (commit) h.set("Nats-Batch-Commit", "1");
  return h.encode();
}

describe("batch headers", () => {
  const cases: [PublishGuards, number, boolean][] = [
    [{}, 1, false],
    [{}, 1, true],
    [{ expectedLastSubjectSeq: 0 }, 1, false],
    [{ expectedLastSubjectSeq: 123_456_789 }, 999, true],
    [{ expectedLastSubjectSeq: 7, expectedLastSubjectSeqSubject: "ev.listing.*" }, 2, true],
    [{ msgId: "3f0c1f4e-2b9a-4c1e-9d7a-5b8e2f6a1c3d", expectedLastSubjectSeq: 0 }, 3, false],
    [{ msgId: " padded ", expectedLastSubjectSeqSubject: "ev.wallet.é" }, 4, true],
  ];

  it("encodes what the client's headers() encodes", () => {
    for (const [guards, seq, commit] of cases) {
      const bytes = batchHeaders(guards, "BATCHID1234567890abcde", seq, commit).encode();
      expect(Buffer.from(bytes).toString()).toBe(Buffer.from(reference(guards, "BATCHID1234567890abcde", seq, commit)).toString());
    }
  });

  it("refuses a value that would break the header block, as headers() does", () => {
    expect(() => batchHeaders({ msgId: "a\r\nNats-Batch-Commit: 1" }, "B", 1, false)).toThrow(/cannot contain/);
  });
});
