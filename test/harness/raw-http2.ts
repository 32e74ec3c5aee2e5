import * as http2 from "node:http2";

/**
 * Raw HTTP/2 requests for specs that send bytes no generated client would: malformed messages, broken envelopes,
 * unknown paths. One session per caller; every request on it is independent.
 */

/** What the server answered to one raw request. */
export interface RawAnswer {
  /** The HTTP status, 0 when the stream was reset before any headers. */
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly trailers: http2.IncomingHttpHeaders;
  readonly body: Buffer;
  /** The RST_STREAM code the stream closed with (0 for NO_ERROR). */
  readonly rstCode: number;
}

/** An HTTP/2 session to `url`, with a `call` for raw requests; close it when done. */
export interface RawSession {
  call(path: string, headers: http2.OutgoingHttpHeaders, body: Uint8Array | readonly Uint8Array[]): Promise<RawAnswer>;
  close(): Promise<void>;
}

/** Opens a cleartext HTTP/2 session (prior knowledge) to `url`. */
export async function openRawSession(url: string): Promise<RawSession> {
  const session = http2.connect(url);
  session.on("error", () => {
    // Each call reports its own failure; a session error ends them all.
  });
  await new Promise<void>((resolve, reject) => {
    session.once("connect", () => {
      resolve();
    });
    session.once("error", reject);
  });
  return {
    call: (path, headers, body) => rawCall(session, path, headers, body),
    close: () =>
      new Promise<void>((resolve) => {
        if (session.destroyed) {
          resolve();
          return;
        }
        const timer = setTimeout(() => {
          // Node now and then leaves a session that has closed all its streams waiting, and then emits no "close"
          // even once destroyed: destroy it and go on, never hanging the spec on it.
          session.destroy();
          resolve();
        }, 2_000);
        session.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
        session.close();
      }),
  };
}

/** Sends one POST with `body` (written chunk by chunk) and collects the whole answer. */
function rawCall(
  session: http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array | readonly Uint8Array[],
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, te: "trailers", ...headers });
    let status = 0;
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`no answer to ${path} within 10 s`));
    }, 10_000);
    stream.on("response", (h: http2.IncomingHttpHeaders) => {
      responseHeaders = h;
      status = Number(h[":status"]);
    });
    stream.on("trailers", (t: http2.IncomingHttpHeaders) => {
      trailers = t;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", () => {
      // A reset shows in rstCode below.
    });
    stream.on("close", () => {
      clearTimeout(timer);
      resolve({ status, headers: responseHeaders, trailers, body: Buffer.concat(chunks), rstCode: stream.rstCode });
    });
    const parts = body instanceof Uint8Array ? [body] : body;
    for (const part of parts) stream.write(part);
    stream.end();
  });
}

/** One gRPC / Connect envelope: flags, a 4-byte big-endian length, the data. */
export function envelope(data: Uint8Array, flags = 0): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

/** The envelopes of a body (a trailing partial one is left out). */
export function envelopes(body: Uint8Array): { readonly flags: number; readonly data: Uint8Array }[] {
  const out: { flags: number; data: Uint8Array }[] = [];
  let at = 0;
  while (at + 5 <= body.length) {
    const length = new DataView(body.buffer, body.byteOffset + at + 1, 4).getUint32(0);
    if (at + 5 + length > body.length) break;
    out.push({ flags: body[at] ?? 0, data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

/** The gRPC status of an answer: from its trailers, or from its headers for a trailers-only answer. */
export function grpcStatus(answer: RawAnswer): { readonly code: number | undefined; readonly message: string } {
  const status = answer.trailers["grpc-status"] ?? answer.headers["grpc-status"];
  const message = answer.trailers["grpc-message"] ?? answer.headers["grpc-message"];
  return {
    code: status === undefined ? undefined : Number(status),
    message: typeof message === "string" ? decodeURIComponent(message) : "",
  };
}

/** The status of a gRPC-Web answer, from its trailer frame (flag 0x80) or, for a trailers-only answer, its headers. */
export function grpcWebStatus(answer: RawAnswer): { readonly code: number | undefined; readonly message: string } {
  const trailer = envelopes(answer.body).find((e) => (e.flags & 0x80) === 0x80);
  if (trailer === undefined) return grpcStatus(answer);
  const fields = new Map<string, string>();
  for (const line of Buffer.from(trailer.data).toString("utf8").split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const status = fields.get("grpc-status");
  return {
    code: status === undefined ? undefined : Number(status),
    message: decodeURIComponent(fields.get("grpc-message") ?? ""),
  };
}

/** The error of a Connect answer: the JSON body of a unary error, or the end-stream message of a stream. */
export function connectError(answer: RawAnswer): { readonly code: string; readonly message: string } | undefined {
  const type = answer.headers["content-type"] ?? "";
  if (type.startsWith("application/connect+")) {
    const end = envelopes(answer.body).find((e) => (e.flags & 0x02) === 0x02);
    if (end === undefined) return undefined;
    const parsed = JSON.parse(Buffer.from(end.data).toString("utf8")) as { error?: { code: string; message?: string } };
    return parsed.error === undefined ? undefined : { code: parsed.error.code, message: parsed.error.message ?? "" };
  }
  if (answer.status === 200 || !type.startsWith("application/json")) return undefined;
  const parsed = JSON.parse(answer.body.toString("utf8")) as { code: string; message?: string };
  return { code: parsed.code, message: parsed.message ?? "" };
}
