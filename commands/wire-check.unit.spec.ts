import { create, fromBinary, fromJson, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, SourceCodeInfo_LocationSchema, StructSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { file_foldline_marketplace_v1_artwork_service } from "../gen/foldline/marketplace/v1/artwork_service_pb.js";
import { ExecuteRequestSchema } from "../gen/foldline/marketplace/v1/command_service_pb.js";
import { DepositRequestSchema } from "../gen/foldline/marketplace/v1/wallet_service_pb.js";
import { maxNestingDepth, wireFormatProblem } from "./wire-check.js";

const bytes = (...parts: (number[] | Uint8Array)[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));
const deposit = (): Uint8Array =>
  toBinary(
    DepositRequestSchema,
    create(DepositRequestSchema, {
      metadata: { commandId: "0b7f2f0e-4a37-4c1e-9d55-0f3a2d1c9b8e", expectedVersion: 3n, actor: "é🎨" },
      walletId: "w1",
      amountCents: -5n,
    }),
  );
const ok = (schema: DescMessage, data: Uint8Array): void => {
  expect(wireFormatProblem(schema, data)).toBeUndefined();
};

describe("wireFormatProblem accepts what encoders write", () => {
  it("takes a generated request, with a negative int64 (a 10-byte varint) and multi-byte UTF-8", () => {
    ok(DepositRequestSchema, deposit());
    ok(ExecuteRequestSchema, toBinary(ExecuteRequestSchema, create(ExecuteRequestSchema, { command: { case: "deposit", value: fromBinary(DepositRequestSchema, deposit()) } })));
  });

  it("takes a file descriptor: nested messages, enums, bools, repeated and packed fields", () => {
    ok(FileDescriptorProtoSchema, toBinary(FileDescriptorProtoSchema, file_foldline_marketplace_v1_artwork_service.proto));
  });

  it("takes packed repeated scalars packed or not", () => {
    ok(SourceCodeInfo_LocationSchema, bytes([0x08, 0x01, 0x08, 0x02]));
    ok(SourceCodeInfo_LocationSchema, bytes([0x0a, 0x03, 0x01, 0x96, 0x01]));
  });

  it("takes maps", () => {
    ok(StructSchema, toBinary(StructSchema, fromJson(StructSchema, { a: 1, b: { c: [1, "x", null, true] } })));
  });

  it("skips unknown fields of every wire type, balanced groups included", () => {
    ok(DepositRequestSchema, bytes(deposit(), [0xa0, 0x06, 0x01], [0xa1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8], [0xa5, 0x06, 1, 2, 3, 4], [0xa2, 0x06, 0x01, 0xff], [0x9b, 0x06, 0x08, 0x01, 0x9c, 0x06]));
  });

  it(`takes nesting up to ${maxNestingDepth} levels`, () => {
    const open = new Array<number[]>(maxNestingDepth).fill([0x9b, 0x06]).flat();
    const close = new Array<number[]>(maxNestingDepth).fill([0x9c, 0x06]).flat();
    ok(DepositRequestSchema, bytes(open, close));
    expect(wireFormatProblem(DepositRequestSchema, bytes(open, [0x9b, 0x06, 0x9c, 0x06], close))).toMatch(/nest deeper than 32/);
  });
});

describe("wireFormatProblem refuses", () => {
  const cases: [string, DescMessage, Uint8Array, RegExp][] = [
    ["an int64 sent as an empty group", DepositRequestSchema, bytes([0x1b, 0x1c]), /^amount_cents \(field 3\) has wire type 3 \(start group\); an int64 takes wire type 0 \(varint\)$/],
    ["a string sent as a varint", DepositRequestSchema, bytes([0x10, 0x01]), /^wallet_id \(field 2\) has wire type 0/],
    ["a message sent as 32 bits", DepositRequestSchema, bytes([0x0d, 1, 2, 3, 4]), /^metadata \(field 1\) has wire type 5/],
    ["a uint64 inside a nested message sent as 64 bits", DepositRequestSchema, bytes([0x0a, 0x09, 0x11, 1, 2, 3, 4, 5, 6, 7, 8]), /^metadata: expected_version \(field 2\) has wire type 1/],
    ["a varint of 11 bytes", DepositRequestSchema, bytes([0x18], new Array<number>(10).fill(0x80), [0x01]), /amount_cents \(field 3\) is a varint longer than 10 bytes/],
    ["a tag of 6 bytes", DepositRequestSchema, bytes([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), /a tag is a varint longer than 5 bytes/],
    ["a tag beyond 32 bits", DepositRequestSchema, bytes([0xff, 0xff, 0xff, 0xff, 0x7f]), /a tag does not fit 32 bits/],
    ["field number 0", DepositRequestSchema, bytes([0x00, 0x01]), /field number 0/],
    ["wire type 7", DepositRequestSchema, bytes([0xa7, 0x06]), /field 100 has wire type 7, which does not exist/],
    ["a length past the end", DepositRequestSchema, bytes([0x12, 0x05, 0x61]), /^wallet_id \(field 2\) runs past the end of the message$/],
    ["a nested length past its message", DepositRequestSchema, bytes([0x0a, 0x02, 0x0a, 0x05, 0x61, 0x61]), /^metadata: command_id \(field 1\) runs past the end of the message$/],
    ["fixed bytes cut short", DepositRequestSchema, bytes([0xa1, 0x06, 1, 2, 3]), /field 100 runs past the end/],
    ["an overlong UTF-8 encoding", DepositRequestSchema, bytes([0x12, 0x02, 0xc0, 0x80]), /^wallet_id \(field 2\) is not valid UTF-8$/],
    ["a UTF-16 surrogate in UTF-8", DepositRequestSchema, bytes([0x12, 0x03, 0xed, 0xa0, 0x80]), /is not valid UTF-8/],
    ["an end of group with no start", DepositRequestSchema, bytes([0x9c, 0x06]), /end of a group \(field 99\) that never started/],
    ["a group closed by another field", DepositRequestSchema, bytes([0x9b, 0x06, 0xa4, 0x06]), /group of field 99 is closed with the end tag of field 100/],
    ["a group never closed", DepositRequestSchema, bytes([0x9b, 0x06, 0x08, 0x01]), /group of field 99 is not closed/],
    ["a group that runs out of its message", DepositRequestSchema, bytes([0x0a, 0x02, 0x9b, 0x06, 0x9c, 0x06]), /^metadata: the group of field 99 is not closed/],
    ["packed varints cut short", SourceCodeInfo_LocationSchema, bytes([0x0a, 0x01, 0x80]), /^path \(field 1\) runs past the end/],
    ["a map entry with a third field", StructSchema, bytes([0x0a, 0x05, 0x0a, 0x01, 0x61, 0x18, 0x01]), /^fields: a map entry has field 3/],
  ];
  it.each(cases)("%s", (_name, schema, data, message) => {
    expect(wireFormatProblem(schema, data)).toMatch(message);
  });
});

describe("wireFormatProblem and fromBinary", () => {
  it("lets through only what fromBinary decodes: 20 000 seeded mutations of valid requests", () => {
    let seed = 0x9e3779b9;
    const random = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const base = [deposit(), toBinary(FileDescriptorProtoSchema, file_foldline_marketplace_v1_artwork_service.proto)];
    const schemas = [DepositRequestSchema, FileDescriptorProtoSchema];
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const which = random(2);
      const data = Uint8Array.from(base[which] ?? []);
      for (let k = 0, n = 1 + random(4); k < n; k++) data[random(data.length)] = random(256);
      const cut = random(3) === 0 ? data.subarray(0, random(data.length + 1)) : data;
      const schema = schemas[which] ?? DepositRequestSchema;
      if (wireFormatProblem(schema, cut) !== undefined) continue;
      accepted++;
      expect(() => fromBinary(schema, cut), `case ${i}: ${Buffer.from(cut).toString("hex")}`).not.toThrow();
    }
    expect(accepted).toBeGreaterThan(100);
  });
});
