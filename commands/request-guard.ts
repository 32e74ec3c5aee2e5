import { isUtf8 } from "node:buffer";
import { fromJsonString, type DescMessage, type JsonReadOptions } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression, UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { parseContentType as parseConnectType } from "@connectrpc/connect/protocol-connect";
import { parseContentType as parseGrpcType } from "@connectrpc/connect/protocol-grpc";
import { parseContentType as parseGrpcWebType } from "@connectrpc/connect/protocol-grpc-web";
import type { Logger } from "pino";
import { capMessage } from "./bounded-text.js";
import { toConnectError } from "./error-codes.js";
import { UndecodableRequest } from "./errors.js";
import { wireFormatProblem } from "./wire-check.js";

/** Options of {@link guardHandlers}; the same limits and codecs the connect-node adapter is given. */
export interface RequestGuardOptions {
  /** The largest message, after decompression, the server reads. */
  readonly readMaxBytes: number;
  /** The request encodings the server accepts (`gzip`, `br`). */
  readonly compressions: readonly Compression[];
  /** How JSON messages are read; unknown fields are refused whatever it says. */
  readonly jsonOptions: Partial<JsonReadOptions>;
  readonly log: Logger;
}

/**
 * Puts a guard in front of every handler of a Connect router, so that no request message reaches the library's
 * decoder unless it decodes to what was sent. connect-es reads request messages before any interceptor runs,
 * reports a binary decoding failure as INTERNAL with the parser's text, and protobuf-es reads a field of the wrong
 * wire type as a value. The guard reads the request body as it streams in, splits it into messages as the
 * protocol frames them (gRPC, gRPC-Web and Connect streaming envelopes; a Connect unary body whole), decompresses
 * those flagged compressed, and checks each one: binary against the method's input descriptor (see
 * wire-check.ts), JSON for valid UTF-8 and by decoding it with unknown fields refused. A message that fails is
 * refused with {@link UndecodableRequest} (INVALID_ARGUMENT, naming the field); on a stream, the messages before
 * it are passed on first, so they are answered before the stream ends with that error.
 *
 * The bytes the handler reads are exactly those received; the guard only holds each message back until it is
 * checked. What it does not check it passes on as it is, for the handler to refuse: a message larger than
 * `readMaxBytes` (RESOURCE_EXHAUSTED), an unknown encoding (UNIMPLEMENTED), a body cut inside an envelope,
 * an unsupported content type. A Connect GET request carries its message in the URL and is not checked: Connect
 * allows GET only for methods marked free of side effects (`idempotency_level = NO_SIDE_EFFECTS`), and a service
 * that marks one should not rely on this guard for it.
 */
export function guardHandlers(handlers: UniversalHandler[], options: RequestGuardOptions): void {
  for (let i = 0; i < handlers.length; i++) {
    const handler = handlers[i];
    if (handler !== undefined) handlers[i] = guardHandler(handler, options);
  }
}

function guardHandler(handler: UniversalHandler, options: RequestGuardOptions): UniversalHandler {
  const { method } = handler;
  const streamed = method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming";
  const guarded = (req: UniversalServerRequest) => handler(guardRequest(req, method.input, streamed, options));
  return Object.assign(guarded, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}

/** How a request's messages are framed and encoded, as the protocol handler will read them. */
interface Framing {
  readonly enveloped: boolean;
  readonly binary: boolean;
  /** The envelope flag of frames the handler skips (gRPC-Web trailers, Connect end-stream); 0 for none. */
  readonly skipFlag: number;
  /** The header naming the compression, and its value. */
  readonly encodingHeader: string;
  readonly encoding: string | null;
}

/** A message checker: returns when the message is fine, throws an INVALID_ARGUMENT ConnectError otherwise. */
type Check = (data: Uint8Array, index: number) => void;

function guardRequest(
  req: UniversalServerRequest,
  schema: DescMessage,
  streamed: boolean,
  options: RequestGuardOptions,
): UniversalServerRequest {
  const framing = framingOf(req);
  if (framing === undefined || !isByteStream(req.body)) return req;
  let compression: Compression | undefined;
  if (framing.encoding !== null && framing.encoding !== "identity") {
    compression = options.compressions.find((c) => c.name === framing.encoding);
    // The handler answers an encoding it does not know before it reads anything.
    if (compression === undefined) return req;
  }
  const refuse = (reason: string, index: number): never => {
    throw toConnectError(new UndecodableRequest(schema.typeName, reason, streamed ? index : undefined), options.log);
  };
  const check: Check = framing.binary ? binaryCheck(schema, refuse) : jsonCheck(schema, options.jsonOptions, refuse);
  const reader: MessageReader = { check, compression, framing, readMaxBytes: options.readMaxBytes, refuse };
  const body = framing.enveloped ? checkedEnvelopes(req.body, reader) : checkedWholeBody(req.body, reader);
  return { ...req, body };
}

function framingOf(req: UniversalServerRequest): Framing | undefined {
  if (req.method !== "POST") return undefined;
  const type = req.header.get("content-type");
  const grpc = parseGrpcType(type);
  if (grpc !== undefined) return envelopes(grpc.binary, 0, "grpc-encoding", req);
  const grpcWeb = parseGrpcWebType(type);
  if (grpcWeb !== undefined) return grpcWeb.text ? undefined : envelopes(grpcWeb.binary, 0x80, "grpc-encoding", req);
  const connect = parseConnectType(type);
  if (connect === undefined) return undefined;
  if (connect.stream) return envelopes(connect.binary, 0x02, "connect-content-encoding", req);
  return { enveloped: false, binary: connect.binary, skipFlag: 0, encodingHeader: "content-encoding", encoding: req.header.get("content-encoding") };
}

function envelopes(binary: boolean, skipFlag: number, encodingHeader: string, req: UniversalServerRequest): Framing {
  return { enveloped: true, binary, skipFlag, encodingHeader, encoding: req.header.get(encodingHeader) };
}

function isByteStream(body: UniversalServerRequest["body"]): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

function binaryCheck(schema: DescMessage, refuse: (reason: string, index: number) => never): Check {
  return (data, index) => {
    const problem = wireFormatProblem(schema, data);
    if (problem !== undefined) refuse(problem, index);
  };
}

// Decodes as the handler will (a BOM is dropped); what is not UTF-8 never gets here.
const utf8 = new TextDecoder();

function jsonCheck(
  schema: DescMessage,
  jsonOptions: Partial<JsonReadOptions>,
  refuse: (reason: string, index: number) => never,
): Check {
  const readOptions = { ...jsonOptions, ignoreUnknownFields: false };
  const ownPrefix = `cannot decode message ${schema.typeName} from JSON: `;
  return (data, index) => {
    // The handler's decoder would put U+FFFD in place of what is not UTF-8, and the request would go through.
    if (!isUtf8(data)) refuse("it is not valid UTF-8", index);
    try {
      fromJsonString(schema, utf8.decode(data), readOptions);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      // protobuf-es quotes an unknown key whole: bound it here.
      refuse(capMessage(message.startsWith(ownPrefix) ? message.slice(ownPrefix.length) : message, 300), index);
    }
  };
}

interface MessageReader {
  readonly check: Check;
  readonly compression: Compression | undefined;
  readonly framing: Framing;
  readonly readMaxBytes: number;
  readonly refuse: (reason: string, index: number) => never;
}

/**
 * Checks one message, throwing when it is refused. One flagged compressed (flag 0x01) is decompressed first, and
 * then the check is a promise; otherwise it is done when this returns, without a turn of the event loop.
 */
function checkMessage(reader: MessageReader, flags: number, data: Uint8Array, index: number): Promise<void> | undefined {
  if ((flags & 0x01) === 0x01) {
    if (reader.compression === undefined) {
      reader.refuse(`it is flagged compressed, but the request has no ${reader.framing.encodingHeader} header`, index);
    }
    return decompress(reader, data, index).then((message) => {
      checkContent(reader, flags, message, index);
    });
  }
  checkContent(reader, flags, data, index);
  return undefined;
}

function checkContent(reader: MessageReader, flags: number, message: Uint8Array, index: number): void {
  if (reader.framing.skipFlag !== 0 && (flags & reader.framing.skipFlag) === reader.framing.skipFlag) return;
  reader.check(message, index);
}

async function decompress(reader: MessageReader, data: Uint8Array, index: number): Promise<Uint8Array> {
  const compression = reader.compression;
  if (compression === undefined) return data;
  try {
    return await compression.decompress(data, reader.readMaxBytes);
  } catch (err) {
    // Too large after decompression is the handler's RESOURCE_EXHAUSTED; anything else is a broken message.
    if (err instanceof ConnectError && err.code === Code.ResourceExhausted) throw err;
    return reader.refuse(`it is flagged ${compression.name}-compressed but does not decompress`, index);
  }
}

/**
 * Passes on the envelopes of `body` once each is checked, in the order they came. Envelopes wholly inside one
 * chunk are checked where they lie and passed on together; one split across chunks is gathered first.
 */
async function* checkedEnvelopes(body: AsyncIterable<Uint8Array>, reader: MessageReader): AsyncGenerator<Uint8Array> {
  const pending = new ByteQueue();
  let index = 0;
  let unchecked = false;
  for await (const chunk of body) {
    if (unchecked) {
      yield chunk;
      continue;
    }
    if (pending.length === 0) {
      // The usual case: the chunk starts with an envelope.
      let at = 0;
      while (at + 5 <= chunk.length) {
        const size = envelopeSize(chunk, at);
        if (size > reader.readMaxBytes) break;
        if (at + 5 + size > chunk.length) break;
        try {
          const decompressing = checkMessage(reader, chunk[at] ?? 0, chunk.subarray(at + 5, at + 5 + size), ++index);
          if (decompressing !== undefined) await decompressing;
        } catch (err) {
          if (at > 0) yield chunk.subarray(0, at);
          throw err;
        }
        at += 5 + size;
      }
      if (at > 0) yield at === chunk.length ? chunk : chunk.subarray(0, at);
      if (at === chunk.length) continue;
      pending.push(chunk.subarray(at));
    } else {
      pending.push(chunk);
    }
    // An envelope split across chunks, or one too large to check.
    while (pending.length >= 5) {
      const header = pending.peek(5);
      const size = envelopeSize(header, 0);
      if (size > reader.readMaxBytes) {
        unchecked = true;
        yield pending.take(pending.length);
        break;
      }
      if (pending.length < 5 + size) break;
      const envelope = pending.take(5 + size);
      const decompressing = checkMessage(reader, envelope[0] ?? 0, envelope.subarray(5), ++index);
      if (decompressing !== undefined) await decompressing;
      yield envelope;
    }
  }
  // A body that ends inside an envelope: the handler says so.
  if (pending.length > 0) yield pending.take(pending.length);
}

function envelopeSize(bytes: Uint8Array, at: number): number {
  return (((bytes[at + 1] ?? 0) << 24) >>> 0) + ((bytes[at + 2] ?? 0) << 16) + ((bytes[at + 3] ?? 0) << 8) + (bytes[at + 4] ?? 0);
}

/** Reads a Connect unary body whole, checks it and passes it on; one too large is passed on unchecked. */
async function* checkedWholeBody(body: AsyncIterable<Uint8Array>, reader: MessageReader): AsyncGenerator<Uint8Array> {
  const received = new ByteQueue();
  const it = body[Symbol.asyncIterator]();
  for (let next = await it.next(); next.done !== true; next = await it.next()) {
    received.push(next.value);
    if (received.length > reader.readMaxBytes) {
      yield received.take(received.length);
      for (next = await it.next(); next.done !== true; next = await it.next()) yield next.value;
      return;
    }
  }
  const whole = received.take(received.length);
  const compressed = reader.compression !== undefined && whole.length > 0;
  const decompressing = checkMessage(reader, compressed ? 0x01 : 0, whole, 1);
  if (decompressing !== undefined) await decompressing;
  yield whole;
}

/** Chunks received and not yet passed on, read from the front. */
class ByteQueue {
  private chunks: Uint8Array[] = [];
  length = 0;

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The first `n` bytes (n <= length), left in the queue. */
  peek(n: number): Uint8Array {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) return first.subarray(0, n);
    return this.gather(n, false);
  }

  /** The first `n` bytes (n <= length), taken out of the queue. */
  take(n: number): Uint8Array {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.length -= n;
      return first.subarray(0, n);
    }
    return this.gather(n, true);
  }

  private gather(n: number, remove: boolean): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    let i = 0;
    while (filled < n) {
      const chunk = this.chunks[i];
      if (chunk === undefined) break;
      const part = Math.min(chunk.length, n - filled);
      out.set(chunk.subarray(0, part), filled);
      filled += part;
      if (part === chunk.length) i++;
      else if (remove) this.chunks[i] = chunk.subarray(part);
    }
    if (remove) {
      this.chunks.splice(0, i);
      this.length -= n;
    }
    return out;
  }
}
