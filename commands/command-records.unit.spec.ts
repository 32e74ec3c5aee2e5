import { describe, expect, it } from "vitest";
import { decodeRecord, encodeRecord, type CommandRecord } from "./command-records.js";

describe("command records", () => {
  const records: CommandRecord[] = [
    { fingerprint: "VI8YJRrNH8K9KXCoYzy4gftg2PKGjjJHgViPquaHtUE", commits: 1, version: 0, position: 0 },
    { fingerprint: "VI8YJRrNH8K9KXCoYzy4gftg2PKGjjJHgViPquaHtUE", commits: 0, version: 12, position: 345_678 },
    { fingerprint: 'quote " backslash \\ line\u2028 é', commits: 0, version: 0, position: 0 },
  ];

  it("writes the JSON that JSON.stringify writes of its fields", () => {
    for (const r of records) {
      const body = r.commits === 0 ? { fingerprint: r.fingerprint, commits: 0, version: r.version, position: r.position } : { fingerprint: r.fingerprint, commits: r.commits };
      expect(Buffer.from(encodeRecord(r)).toString()).toBe(JSON.stringify(body));
    }
  });

  it("reads back what it writes", () => {
    for (const r of records) expect(decodeRecord(encodeRecord(r))).toEqual(r);
  });
});
