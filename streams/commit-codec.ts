import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { CommitSchema } from "../gen/foldline/store/v1/commit_pb.js";
import { WireCursor } from "./wire-cursor.js";

/** One event as the store carries it: a type name, a schema version and opaque payload bytes. */
export interface EventRecord {
  readonly type: string;
  readonly schemaVersion: number;
  readonly payload: Uint8Array;
}

/** Who caused a commit, why and when. Empty strings stand for "not given". */
export interface CommitMetadata {
  readonly commandId: string;
  readonly actor: string;
  readonly correlationId: string;
  readonly causationId: string;
  readonly recordedAt: Date;
  /** The aggregate's version after the commit (1 for its first); 0 when the writer does not track versions. */
  readonly aggregateVersion: number;
}

/** A commit's content: the events of one command and their metadata. */
export interface CommitBody {
  readonly events: readonly EventRecord[];
  readonly metadata: CommitMetadata;
}

/**
 * Encodes a commit as the `foldline.store.v1.Commit` protobuf message stored in the stream, byte for byte what
 * protobuf-es's `toBinary` writes (a unit test holds the two together). Appends are the hot path and the
 * reflective encoder cost about a tenth of an append's client CPU, so the envelope's fixed shape is written
 * directly here. Times before 1970 take the reflective path.
 */
export function encodeCommit(body: CommitBody): Uint8Array {
  const { metadata } = body;
  const ms = metadata.recordedAt.getTime();
  if (!(ms >= 0)) return encodeCommitReflective(body);
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms % 1000) * 1_000_000;

  const eventSizes = body.events.map(
    (e) => stringField(e.type) + (e.schemaVersion === 0 ? 0 : 1 + varintSize(e.schemaVersion)) + bytesField(e.payload.length),
  );
  const timestampSize = (seconds === 0 ? 0 : 1 + varintSize(seconds)) + (nanos === 0 ? 0 : 1 + varintSize(nanos));
  const metadataSize =
    stringField(metadata.commandId) +
    stringField(metadata.actor) +
    stringField(metadata.correlationId) +
    stringField(metadata.causationId) +
    1 +
    varintSize(timestampSize) +
    timestampSize +
    (metadata.aggregateVersion === 0 ? 0 : 1 + varintSize(metadata.aggregateVersion));
  let total = 1 + varintSize(metadataSize) + metadataSize;
  for (const size of eventSizes) total += 1 + varintSize(size) + size;

  const w = new Writer(total);
  body.events.forEach((e, i) => {
    w.byte(0x0a); // Commit.events = 1, length-delimited
    w.varint(eventSizes[i] ?? 0);
    w.string(0x0a, e.type); // Event.type = 1
    if (e.schemaVersion !== 0) {
      w.byte(0x10); // Event.schema_version = 2, varint
      w.varint(e.schemaVersion);
    }
    w.bytes(0x1a, e.payload); // Event.payload = 3
  });
  w.byte(0x12); // Commit.metadata = 2
  w.varint(metadataSize);
  w.string(0x0a, metadata.commandId);
  w.string(0x12, metadata.actor);
  w.string(0x1a, metadata.correlationId);
  w.string(0x22, metadata.causationId);
  w.byte(0x2a); // CommitMetadata.recorded_at = 5
  w.varint(timestampSize);
  if (seconds !== 0) {
    w.byte(0x08); // Timestamp.seconds = 1
    w.varint(seconds);
  }
  if (nanos !== 0) {
    w.byte(0x10); // Timestamp.nanos = 2
    w.varint(nanos);
  }
  if (metadata.aggregateVersion !== 0) {
    w.byte(0x30); // CommitMetadata.aggregate_version = 6, varint
    w.varint(metadata.aggregateVersion);
  }
  return w.out;
}

/** Writes protobuf wire format into a buffer of a size computed beforehand. */
class Writer {
  readonly out: Buffer;
  private at = 0;
  constructor(size: number) {
    this.out = Buffer.allocUnsafe(size);
  }
  byte(value: number): void {
    this.out[this.at++] = value;
  }
  /** A non-negative integer below 2^53. */
  varint(value: number): void {
    while (value > 0x7f) {
      this.out[this.at++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.out[this.at++] = value;
  }
  /** A length-delimited string field; proto3 leaves out the empty string. */
  string(tag: number, value: string): void {
    if (value === "") return;
    this.byte(tag);
    this.varint(Buffer.byteLength(value));
    this.at += this.out.write(value, this.at);
  }
  /** A length-delimited bytes field; proto3 leaves out empty bytes. */
  bytes(tag: number, value: Uint8Array): void {
    if (value.length === 0) return;
    this.byte(tag);
    this.varint(value.length);
    this.out.set(value, this.at);
    this.at += value.length;
  }
}

/** The reference encoding through protobuf-es's reflection. */
export function encodeCommitReflective(body: CommitBody): Uint8Array {
  const { metadata } = body;
  return toBinary(
    CommitSchema,
    create(CommitSchema, {
      events: body.events.map((e) => ({ type: e.type, schemaVersion: e.schemaVersion, payload: e.payload })),
      metadata: {
        commandId: metadata.commandId,
        actor: metadata.actor,
        correlationId: metadata.correlationId,
        causationId: metadata.causationId,
        recordedAt: timestampFromMs(metadata.recordedAt.getTime()),
        aggregateVersion: BigInt(metadata.aggregateVersion),
      },
    }),
  );
}

/**
 * Decodes a stored commit. Throws when the bytes are not a Commit message.
 *
 * Returns what protobuf-es's `fromBinary` reads (a unit test holds the two together, on valid and on random
 * bytes). Reading is a rebuild's hot path, so the bytes are first read as {@link encodeCommit} lays them out
 * (fields in order, each once, strings ASCII, numbers short), with no reader object, no tag tuples and no UTF-8
 * decoder; at the first byte that differs, the commit is read again from the start by {@link decodeCommitGeneral},
 * which follows every rule of the wire format. Event payloads stay undecoded views of `bytes`.
 */
export function decodeCommit(bytes: Uint8Array): CommitBody {
  return decodeCommitAsWritten(bytes) ?? decodeCommitGeneral(bytes);
}

/**
 * Decodes any Commit message by field number with protobuf-es's own wire reader, in the order and with the checks
 * `fromBinary` reads it with: a known field is read as its type says whatever its wire type, an unknown one is
 * skipped, a message field given twice is merged, strings must be UTF-8.
 */
function decodeCommitGeneral(bytes: Uint8Array): CommitBody {
  const r = new BinaryReader(bytes);
  const events: EventRecord[] = [];
  const m: MutableMetadata = { commandId: "", actor: "", correlationId: "", causationId: "", seconds: 0, nanos: 0, aggregateVersion: 0 };
  let hasMetadata = false;
  let hasTimestamp = false;
  const end = bytes.length;
  while (r.pos < end) {
    const [no, wireType] = r.tag();
    if (no === 1) events.push(readEvent(r, r.uint32()));
    else if (no === 2) {
      hasMetadata = true;
      hasTimestamp = readMetadata(r, r.uint32(), m) || hasTimestamp;
    } else r.skip(wireType, no, recursionLimit - 1);
  }
  return {
    events,
    metadata: {
      commandId: m.commandId,
      actor: m.actor,
      correlationId: m.correlationId,
      causationId: m.causationId,
      // As protobuf-es's timestampDate computes it.
      recordedAt: new Date(hasMetadata && hasTimestamp ? m.seconds * 1000 + Math.round(m.nanos / 1000000) : 0),
      aggregateVersion: m.aggregateVersion,
    },
  };
}

/**
 * Reads a commit laid out as {@link encodeCommit} writes it: events (type, schema version, payload), then the
 * metadata (four strings, the timestamp's seconds and nanos, the version), each field once, in that order,
 * absent when empty. Strings are ASCII, lengths and the schema version below 2^32, the seconds and the version
 * below 2^49, the nanos below 2^31: there the wire format has one reading, the one `fromBinary` gives. Returns
 * undefined at the first byte that departs from this, for the general reader to read the whole commit again.
 * Exported for its spec, which holds it to reading every commit {@link encodeCommit} writes.
 */
export function decodeCommitAsWritten(bytes: Uint8Array): CommitBody | undefined {
  const c = new WireCursor(bytes);
  const end = bytes.length;
  const events: EventRecord[] = [];
  while (c.next(0x0a, end)) {
    const eventEnd = c.end(end);
    if (eventEnd < 0) return undefined;
    const type = c.next(0x0a, eventEnd) ? c.ascii(eventEnd) : "";
    const schemaVersion = c.next(0x10, eventEnd) ? c.varint(5, eventEnd) : 0;
    const payload = c.next(0x1a, eventEnd) ? c.view(eventEnd) : emptyBytes;
    if (type === undefined || schemaVersion < 0 || schemaVersion > 0xffffffff || payload === undefined || c.pos !== eventEnd) {
      return undefined;
    }
    events.push({ type, schemaVersion, payload });
  }
  if (!c.next(0x12, end) || c.end(end) !== end) return undefined;
  const commandId = c.next(0x0a, end) ? c.ascii(end) : "";
  const actor = c.next(0x12, end) ? c.ascii(end) : "";
  const correlationId = c.next(0x1a, end) ? c.ascii(end) : "";
  const causationId = c.next(0x22, end) ? c.ascii(end) : "";
  if (commandId === undefined || actor === undefined || correlationId === undefined || causationId === undefined) return undefined;
  let seconds = 0;
  let nanos = 0;
  if (c.next(0x2a, end)) {
    const timestampEnd = c.end(end);
    if (timestampEnd < 0) return undefined;
    if (c.next(0x08, timestampEnd)) seconds = c.varint(7, timestampEnd);
    if (c.next(0x10, timestampEnd)) nanos = c.varint(5, timestampEnd);
    if (seconds < 0 || nanos < 0 || nanos > 0x7fffffff || c.pos !== timestampEnd) return undefined;
  }
  const aggregateVersion = c.next(0x30, end) ? c.varint(7, end) : 0;
  if (aggregateVersion < 0 || c.pos !== end) return undefined;
  return {
    events,
    metadata: {
      commandId,
      actor,
      correlationId,
      causationId,
      recordedAt: new Date(seconds * 1000 + Math.round(nanos / 1000000)),
      aggregateVersion,
    },
  };
}

/** The reference decoding through protobuf-es's reflection. */
export function decodeCommitReflective(bytes: Uint8Array): CommitBody {
  const commit = fromBinary(CommitSchema, bytes);
  const m = commit.metadata;
  return {
    events: commit.events.map((e) => ({ type: e.type, schemaVersion: e.schemaVersion, payload: e.payload })),
    metadata: {
      commandId: m?.commandId ?? "",
      actor: m?.actor ?? "",
      correlationId: m?.correlationId ?? "",
      causationId: m?.causationId ?? "",
      recordedAt: m?.recordedAt === undefined ? new Date(0) : timestampDate(m.recordedAt),
      aggregateVersion: Number(m?.aggregateVersion ?? 0n),
    },
  };
}

// protobuf-es's default recursion limit; skipping an unknown group at depth d may nest `limit - d` deep.
const recursionLimit = 100;
const emptyBytes = new Uint8Array(0);

interface MutableMetadata {
  commandId: string;
  actor: string;
  correlationId: string;
  causationId: string;
  seconds: number;
  nanos: number;
  aggregateVersion: number;
}

/** Reads an `Event` of `length` bytes. */
function readEvent(r: BinaryReader, length: number): EventRecord {
  const end = r.pos + length;
  let type = "";
  let schemaVersion = 0;
  let payload: Uint8Array = emptyBytes;
  while (r.pos < end) {
    const [no, wireType] = r.tag();
    if (no === 1) type = r.string(true);
    else if (no === 2) schemaVersion = r.uint32();
    else if (no === 3) payload = r.bytes();
    else r.skip(wireType, no, recursionLimit - 2);
  }
  return { type, schemaVersion, payload };
}

/** Merges a `CommitMetadata` of `length` bytes into `m`; true when it held a `recorded_at`. */
function readMetadata(r: BinaryReader, length: number, m: MutableMetadata): boolean {
  const end = r.pos + length;
  let hasTimestamp = false;
  while (r.pos < end) {
    const [no, wireType] = r.tag();
    switch (no) {
      case 1:
        m.commandId = r.string(true);
        break;
      case 2:
        m.actor = r.string(true);
        break;
      case 3:
        m.correlationId = r.string(true);
        break;
      case 4:
        m.causationId = r.string(true);
        break;
      case 5:
        hasTimestamp = true;
        readTimestamp(r, r.uint32(), m);
        break;
      case 6:
        m.aggregateVersion = Number(r.uint64());
        break;
      default:
        r.skip(wireType, no, recursionLimit - 2);
    }
  }
  return hasTimestamp;
}

/** Merges a `google.protobuf.Timestamp` of `length` bytes into `m`. */
function readTimestamp(r: BinaryReader, length: number, m: MutableMetadata): void {
  const end = r.pos + length;
  while (r.pos < end) {
    const [no, wireType] = r.tag();
    if (no === 1) m.seconds = Number(r.int64());
    else if (no === 2) m.nanos = r.int32();
    else r.skip(wireType, no, recursionLimit - 3);
  }
}

function varintSize(value: number): number {
  let size = 1;
  while (value > 0x7f) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

/** Size of a length-delimited field with a one-byte tag; proto3 leaves out empty values. */
function bytesField(length: number): number {
  return length === 0 ? 0 : 1 + varintSize(length) + length;
}

function stringField(value: string): number {
  return bytesField(Buffer.byteLength(value));
}
