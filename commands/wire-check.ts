import { isUtf8 } from "node:buffer";
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { WireCursor } from "../streams/wire-cursor.js";

/**
 * A check of protobuf binary wire format against a message's descriptor, run on request bytes before they are
 * decoded. protobuf-es (2.13, and 2.14 too) reads a known field with whatever wire type it arrives in, so an
 * int64 sent as an empty group (`1b 1c`) reads as 28; it does not skip unknown fields inside map entries; and
 * its failures surface through connect-es as INTERNAL with the parser's text. This check accepts exactly the
 * encodings a conforming encoder of the schema writes (and unknown fields, skipped by their wire type), so that
 * whatever it lets through decodes to the values that were sent.
 *
 * Refused: a tag or length that is not a varint of at most 5 bytes or exceeds 32 bits; a varint value longer
 * than 10 bytes; field number 0; wire types 6 and 7; a known field whose wire type is not the one its type is
 * written with (packed repeated scalars may also come length-delimited); a string that is not valid UTF-8; a
 * field that runs past the end of its message; an end-group tag without its group, or a group not closed or
 * closed with another field's number; a map entry with fields other than key (1) and value (2); messages or
 * groups nested deeper than {@link maxNestingDepth}.
 */

/** How deep messages and groups may nest inside a request (the top-level message is depth 0). */
export const maxNestingDepth = 32;

const varint = 0;
const fixed64 = 1;
const delimited = 2;
const startGroup = 3;
const endGroup = 4;
const fixed32 = 5;
const wireNames = ["varint", "64-bit", "length-delimited", "start group", "end group", "32-bit"];

/** Returns undefined when `bytes` is well-formed for `schema`, else a short reason naming the field. */
export function wireFormatProblem(schema: DescMessage, bytes: Uint8Array): string | undefined {
  const cursor = new WireCursor(bytes);
  try {
    checkMessage(compiled(schema), cursor, bytes.length, 0, 0);
    return undefined;
  } catch (err) {
    if (!(err instanceof Malformed)) throw err;
    return err.path.length === 0 ? err.message : `${err.path.join(".")}: ${err.message}`;
  }
}

/** Why the bytes are refused; `path` names the message fields around the fault, outermost first. */
class Malformed extends Error {
  readonly path: string[] = [];
}

type Content = "varint" | "fixed64" | "fixed32" | "string" | "bytes" | "message" | "group" | "map";

interface FieldRule {
  readonly number: number;
  /** `name (field n)`, as messages name it. */
  readonly label: string;
  /** What the type is called in messages: `int64`, `string`, `message foo.Bar`. */
  readonly typeLabel: string;
  /** The wire type the field is written with. */
  readonly wire: number;
  readonly content: Content;
  /** A repeated scalar (not string or bytes): may also come packed, length-delimited. */
  readonly packable: boolean;
  /** For message, group and map contents: what is inside, compiled when first needed. */
  readonly inner: (() => CompiledMessage) | undefined;
}

interface CompiledMessage {
  /** Rules by field number; sparse numbers above 1024 go to `sparse`. */
  readonly dense: readonly (FieldRule | undefined)[];
  readonly sparse: ReadonlyMap<number, FieldRule>;
  /** Map entries refuse fields they do not declare (protobuf-es would misread them). */
  readonly closed: boolean;
}

const compiledMessages = new WeakMap<DescMessage, CompiledMessage>();
const empty: CompiledMessage = { dense: [], sparse: new Map(), closed: false };

function compiled(desc: DescMessage): CompiledMessage {
  let message = compiledMessages.get(desc);
  if (message === undefined) {
    message = compileRules(desc.fields.map(fieldRule), false);
    compiledMessages.set(desc, message);
  }
  return message;
}

function compileRules(rules: readonly FieldRule[], closed: boolean): CompiledMessage {
  const dense: (FieldRule | undefined)[] = [];
  const sparse = new Map<number, FieldRule>();
  for (const rule of rules) {
    if (rule.number <= 1024) dense[rule.number] = rule;
    else sparse.set(rule.number, rule);
  }
  return { dense, sparse, closed };
}

function fieldRule(field: DescField): FieldRule {
  const label = `${field.name} (field ${field.number})`;
  switch (field.fieldKind) {
    case "scalar":
      return scalarRule(field.number, label, field.scalar, false);
    case "enum":
      return scalarRule(field.number, label, ScalarType.INT32, false, "enum");
    case "message":
      return messageRule(field.number, label, field.message, field.delimitedEncoding);
    case "list":
      if (field.listKind === "message") return messageRule(field.number, label, field.message, field.delimitedEncoding);
      if (field.listKind === "enum") return scalarRule(field.number, label, ScalarType.INT32, true, "enum");
      return scalarRule(field.number, label, field.scalar, true);
    case "map": {
      const key = scalarRule(1, "key (field 1)", field.mapKey, false);
      const value =
        field.mapKind === "message"
          ? messageRule(2, "value (field 2)", field.message, false)
          : field.mapKind === "enum"
            ? scalarRule(2, "value (field 2)", ScalarType.INT32, false, "enum")
            : scalarRule(2, "value (field 2)", field.scalar, false);
      const entry = compileRules([key, value], true);
      return { number: field.number, label, typeLabel: "map entry", wire: delimited, content: "map", packable: false, inner: () => entry };
    }
  }
}

function scalarRule(number: number, label: string, scalar: ScalarType, repeated: boolean, typeLabel?: string): FieldRule {
  const content = scalarContent(scalar);
  const wire = content === "fixed64" ? fixed64 : content === "fixed32" ? fixed32 : content === "varint" ? varint : delimited;
  return {
    number,
    label,
    typeLabel: typeLabel ?? ScalarType[scalar].toLowerCase(),
    wire,
    content,
    packable: repeated && wire !== delimited,
    inner: undefined,
  };
}

function scalarContent(scalar: ScalarType): Content {
  switch (scalar) {
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return "fixed64";
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return "fixed32";
    case ScalarType.STRING:
      return "string";
    case ScalarType.BYTES:
      return "bytes";
    default:
      return "varint";
  }
}

function messageRule(number: number, label: string, desc: DescMessage, group: boolean): FieldRule {
  return {
    number,
    label,
    typeLabel: `message ${desc.typeName}`,
    wire: group ? startGroup : delimited,
    content: group ? "group" : "message",
    packable: false,
    inner: () => compiled(desc),
  };
}

/**
 * Checks fields from the cursor up to `end`. For a group (`groupNumber` > 0), stops after its end tag, which
 * must come before `end`.
 */
function checkMessage(message: CompiledMessage, c: WireCursor, end: number, depth: number, groupNumber: number): void {
  if (depth > maxNestingDepth) throw new Malformed(`messages or groups nest deeper than ${maxNestingDepth} levels`);
  while (c.pos < end) {
    const tag = readUint32(c, end, "a tag");
    const number = Math.floor(tag / 8);
    const wire = tag & 7;
    if (number === 0) throw new Malformed("it has a field number 0, which does not exist");
    if (wire === endGroup) {
      if (number === groupNumber) return;
      throw new Malformed(
        groupNumber === 0
          ? `it has the end of a group (field ${number}) that never started`
          : `the group of field ${groupNumber} is closed with the end tag of field ${number}`,
      );
    }
    if (wire > fixed32) throw new Malformed(`field ${number} has wire type ${wire}, which does not exist`);
    const rule = number <= 1024 ? message.dense[number] : message.sparse.get(number);
    if (rule !== undefined) checkKnownField(rule, c, end, wire, depth);
    else if (message.closed) throw new Malformed(`a map entry has field ${number}; map entries have only key (1) and value (2)`);
    else skipUnknownField(number, c, end, wire, depth);
  }
  if (groupNumber !== 0) throw new Malformed(`the group of field ${groupNumber} is not closed: it ends inside it`);
}

function checkKnownField(rule: FieldRule, c: WireCursor, end: number, wire: number, depth: number): void {
  if (wire !== rule.wire) {
    if (rule.packable && wire === delimited) {
      checkPacked(rule, c, end);
      return;
    }
    throw new Malformed(
      `${rule.label} has wire type ${wire} (${wireNames[wire] ?? "?"}); ${article(rule.typeLabel)} ${rule.typeLabel} takes wire type ${rule.wire} (${wireNames[rule.wire] ?? "?"})`,
    );
  }
  switch (rule.content) {
    case "varint":
      skipVarint(c, end, rule.label);
      return;
    case "fixed64":
      skipBytes(c, end, 8, rule.label);
      return;
    case "fixed32":
      skipBytes(c, end, 4, rule.label);
      return;
    case "group":
      checkNested(rule, c, end, depth, rule.number);
      return;
    default:
      checkDelimited(rule, c, end, depth);
  }
}

function checkDelimited(rule: FieldRule, c: WireCursor, end: number, depth: number): void {
  const length = readUint32(c, end, rule.label);
  const stop = c.pos + length;
  if (stop > end) throw new Malformed(`${rule.label} runs past the end of the message`);
  switch (rule.content) {
    case "string":
      if (!validUtf8(c.bytes, c.pos, stop)) throw new Malformed(`${rule.label} is not valid UTF-8`);
      c.pos = stop;
      return;
    case "bytes":
      c.pos = stop;
      return;
    default:
      checkNested(rule, c, stop, depth, 0);
  }
}

/** Checks a nested message or group, naming the field on the way out when something inside is wrong. */
function checkNested(rule: FieldRule, c: WireCursor, end: number, depth: number, groupNumber: number): void {
  const inner = rule.inner?.() ?? empty;
  try {
    checkMessage(inner, c, end, depth + 1, groupNumber);
  } catch (err) {
    if (err instanceof Malformed) err.path.unshift(rule.label.slice(0, rule.label.indexOf(" ")));
    throw err;
  }
}

function checkPacked(rule: FieldRule, c: WireCursor, end: number): void {
  const length = readUint32(c, end, rule.label);
  const stop = c.pos + length;
  if (stop > end) throw new Malformed(`${rule.label} runs past the end of the message`);
  const size = rule.content === "fixed64" ? 8 : rule.content === "fixed32" ? 4 : 0;
  if (size > 0) {
    if (length % size !== 0) throw new Malformed(`${rule.label} packs ${length} bytes, not a whole number of ${size}-byte values`);
    c.pos = stop;
    return;
  }
  while (c.pos < stop) skipVarint(c, stop, rule.label);
}

function skipUnknownField(number: number, c: WireCursor, end: number, wire: number, depth: number): void {
  const label = `field ${number}`;
  switch (wire) {
    case varint:
      skipVarint(c, end, label);
      return;
    case fixed64:
      skipBytes(c, end, 8, label);
      return;
    case fixed32:
      skipBytes(c, end, 4, label);
      return;
    case delimited: {
      const length = readUint32(c, end, label);
      if (c.pos + length > end) throw new Malformed(`${label} runs past the end of the message`);
      c.pos += length;
      return;
    }
    default:
      checkMessage(empty, c, end, depth + 1, number);
  }
}

/** A varint of at most 5 bytes whose value fits 32 bits: tags and lengths. */
function readUint32(c: WireCursor, end: number, what: string): number {
  const start = c.pos;
  const value = c.varint(5, end);
  if (value < 0) {
    throw new Malformed(c.pos - start < 5 ? `${what} runs past the end of the message` : `${what} is a varint longer than 5 bytes`);
  }
  if (value > 0xffff_ffff) throw new Malformed(`${what} does not fit 32 bits`);
  return value;
}

/** A varint of at most 10 bytes (a 64-bit value). */
function skipVarint(c: WireCursor, end: number, what: string): void {
  if (c.varint(10, end) >= 0) return;
  throw new Malformed(c.pos >= end ? `${what} runs past the end of the message` : `${what} is a varint longer than 10 bytes`);
}

function skipBytes(c: WireCursor, end: number, count: number, what: string): void {
  if (c.pos + count > end) throw new Malformed(`${what} runs past the end of the message`);
  c.pos += count;
}

/** Whether bytes [start, end) of `buf` are valid UTF-8; plain ASCII, the usual case, is told without a copy. */
function validUtf8(buf: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    if ((buf[i] ?? 0) >= 0x80) return isUtf8(buf.subarray(i, end));
  }
  return true;
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? "an" : "a";
}
