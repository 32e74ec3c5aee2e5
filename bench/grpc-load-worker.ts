/**
 * The child process of `runGrpcLoad` (see grpc-load.ts): receives one `GrpcLoadRequest` over IPC, runs it, sends
 * back one `GrpcLoadReply` and exits. It exits as well when its parent goes away, so it never outlives a
 * benchmark.
 *
 * It is written for a low cost per message rather than for elegance: the handlers of a slot or stream are
 * created once and reused for every call, the send times of a stream sit in a preallocated ring, and answers are
 * parsed in place, reading only the tag of their first field.
 */
import { randomUUID } from "node:crypto";
import {
  connect,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
  type OutgoingHttpHeaders,
} from "node:http2";
import type { GrpcLoadOptions, GrpcLoadReply, GrpcLoadRequest, GrpcLoadResult } from "./grpc-load.js";

/** How long in-flight work may take to finish once the window has closed. */
const drainTimeoutMs = 5_000;
const connectTimeoutMs = 5_000;
const closeTimeoutMs = 2_000;
/** Latency samples kept (8 MiB); beyond that a uniform sample of them. */
const reservoirCapacity = 1 << 20;

/** Ends the run with an error: where every unexpected failure (a broken session, a refused request) goes. */
type Fail = (error: Error) => void;

/** Counts what completes inside the measured window. */
interface Meter {
  success(latencyMs: number): void;
  /** Counts a failure; true when a description of it is wanted (it is the window's first). */
  failure(): boolean;
  describe(text: string): void;
  begin(): void;
  end(): GrpcLoadResult;
}

/** A mode's traffic: started once, stopped once; `stop` resolves when in-flight work has finished or timed out. */
interface Driver {
  start(): void;
  stop(): Promise<void>;
}

/** Returns a fresh gRPC frame (flag, length, message) of slot `slot`'s template, with a new UUID in it. */
type FrameSource = (slot: number) => Buffer;

async function runLoad(o: GrpcLoadOptions): Promise<GrpcLoadResult> {
  const frames = createFrameSource(o.templates, o.placeholder);
  const meter = createMeter();
  let fail: Fail = () => undefined;
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  // A failure reported after the run has ended (a session closing under us) changes nothing any more.
  failed.catch(() => undefined);

  const streams = o.mode === "stream" ? (o.streams ?? 4) : 0;
  const h2Streams = o.mode === "unary" ? o.concurrency : streams;
  const sessionCount = o.sessions ?? Math.ceil(h2Streams / 100);
  const sessions: ClientHttp2Session[] = [];
  let closing = false;
  let ok = false;
  try {
    for (let i = 0; i < sessionCount; i++) {
      sessions.push(
        openSession(o.url, i, (err) => {
          if (!closing) fail(err);
        }),
      );
    }
    await Promise.race([Promise.all(sessions.map(connected)), failed]);

    const driver =
      o.mode === "unary"
        ? createUnaryDriver(o, sessions, frames, meter, fail)
        : createStreamDriver(o, streams, sessions, frames, meter, fail);
    driver.start();
    await Promise.race([sleep(o.warmupMs ?? 1_000), failed]);
    meter.begin();
    await Promise.race([sleep(o.durationMs), failed]);
    const result = meter.end();
    await Promise.race([driver.stop(), failed]);
    ok = true;
    return result;
  } finally {
    closing = true;
    // After a failure the sessions are broken or going away: a graceful close would only wait for them.
    if (ok) await Promise.all(sessions.map(closeSession));
    else for (const session of sessions) session.destroy();
  }
}

/**
 * Opens one h2c session; `onFailure` hears of its errors and of it going away. (Nagle's algorithm is already off:
 * Http2Session disables it on its socket, and forbids touching the socket.)
 */
function openSession(url: string, index: number, onFailure: Fail): ClientHttp2Session {
  const session = connect(url);
  session.on("error", (err: Error) => {
    onFailure(new Error(`session ${index} to ${url}: ${err.message}`, { cause: err }));
  });
  session.on("goaway", (code) => {
    onFailure(new Error(`session ${index} to ${url}: the server sent GOAWAY (code ${code})`));
  });
  session.on("close", () => {
    onFailure(new Error(`session ${index} to ${url} closed`));
  });
  return session;
}

function connected(session: ClientHttp2Session): Promise<void> {
  if (session.connecting) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`could not connect within ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      session.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  return Promise.resolve();
}

/** Closes a session gracefully, or destroys it if that takes too long. */
function closeSession(session: ClientHttp2Session): Promise<void> {
  if (session.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      session.destroy();
      resolve();
    }, closeTimeoutMs);
    session.close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Unary: every slot loops one call at a time; a call succeeds iff its grpc-status is "0". */
function createUnaryDriver(
  o: GrpcLoadOptions,
  sessions: readonly ClientHttp2Session[],
  frames: FrameSource,
  meter: Meter,
  fail: Fail,
): Driver {
  const headers = requestHeaders(o.path);
  let stopping = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;

  // With a rate, slot i sends at its own pace (every `concurrency / rate` seconds), slots staggered evenly.
  const paceMs = o.ratePerSecond === undefined ? 0 : (o.concurrency * 1_000) / o.ratePerSecond;
  const createSlot = (index: number): (() => void) => {
    const session = at(sessions, index % sessions.length);
    let dueAt = performance.now() + (paceMs * index) / o.concurrency;
    let sentAt = 0;
    let doneAt = 0;
    let httpStatus: number | undefined;
    let grpcStatus: string | undefined;
    let grpcMessage: string | undefined;
    let error: Error | undefined;

    const onResponse = (h: IncomingHttpHeaders & IncomingHttpStatusHeader): void => {
      httpStatus = h[":status"];
      // A trailers-only answer (an error before any message) carries its status in the headers.
      grpcStatus = header(h, "grpc-status");
      grpcMessage = header(h, "grpc-message");
    };
    const onTrailers = (t: IncomingHttpHeaders): void => {
      doneAt = performance.now();
      const status = header(t, "grpc-status");
      if (status !== undefined) {
        grpcStatus = status;
        grpcMessage = header(t, "grpc-message");
      }
    };
    const onError = (err: Error): void => {
      error = err;
    };
    const onClose = (): void => {
      inFlight--;
      if (error === undefined && grpcStatus === "0") {
        meter.success((doneAt === 0 ? performance.now() : doneAt) - sentAt);
      } else if (meter.failure()) {
        meter.describe(
          error !== undefined
            ? describeError(error)
            : grpcStatus !== undefined
              ? describeStatus(grpcStatus, grpcMessage)
              : `no grpc-status in the answer (HTTP status ${String(httpStatus)})`,
        );
      }
      paced();
    };

    /** Sends at once without a rate; with one, when this slot's next turn is due. */
    const paced = (): void => {
      if (paceMs === 0) {
        next();
        return;
      }
      const wait = dueAt - performance.now();
      dueAt = Math.max(dueAt + paceMs, performance.now());
      if (wait <= 0) next();
      else setTimeout(next, wait);
    };

    const next = (): void => {
      if (stopping) {
        if (inFlight === 0) drained?.();
        return;
      }
      doneAt = 0;
      httpStatus = undefined;
      grpcStatus = undefined;
      grpcMessage = undefined;
      error = undefined;
      let req: ClientHttp2Stream;
      try {
        req = session.request(headers);
      } catch (err) {
        fail(asError(err));
        return;
      }
      inFlight++;
      req.on("response", onResponse);
      req.on("trailers", onTrailers);
      req.on("error", onError);
      req.on("close", onClose);
      // The answer's message is not looked at; flowing mode without a listener discards it.
      req.resume();
      sentAt = performance.now();
      req.end(frames(index));
    };
    return paced;
  };

  const slots = Array.from({ length: o.concurrency }, (_, i) => createSlot(i));
  return {
    start() {
      for (const next of slots) next();
    },
    stop() {
      stopping = true;
      if (inFlight === 0) return Promise.resolve();
      return withTimeout(
        new Promise<void>((resolve) => {
          drained = resolve;
        }),
        () => {
          log(`${inFlight} calls still in flight ${drainTimeoutMs} ms after the window, abandoned`);
        },
      );
    },
  };
}

/**
 * Stream mode: `streams` bidirectional calls, each keeping its share of `concurrency` messages in flight and
 * sending the next one whenever an answer arrives. Answers come in the order of the messages, so each stream
 * pairs them with a FIFO of send times. A stream the server ends or resets before it is told to stop counts
 * its unanswered messages as errors and is opened again.
 */
function createStreamDriver(
  o: GrpcLoadOptions,
  count: number,
  sessions: readonly ClientHttp2Session[],
  frames: FrameSource,
  meter: Meter,
  fail: Fail,
): Driver {
  const headers = requestHeaders(o.path);
  const errorField = o.errorField ?? -1;
  let stopping = false;
  let open = 0;
  let drained: (() => void) | undefined;

  interface Bidi {
    open(): void;
    /** Half-closes the stream once nothing is in flight on it. */
    stop(): void;
  }

  const createBidi = (index: number, firstSlot: number, window: number): Bidi => {
    const session = at(sessions, index % sessions.length);
    // A ring of what is in flight: when each message was sent, and from which slot.
    const sentAt = new Float64Array(window);
    const slotOf = new Uint32Array(window);
    let head = 0;
    let size = 0;
    let req: ClientHttp2Stream | undefined;
    let ended = false;
    let grpcStatus: string | undefined;
    let grpcMessage: string | undefined;
    let error: Error | undefined;

    const send = (slot: number): void => {
      if (req === undefined) return;
      const tail = (head + size) % window;
      sentAt[tail] = performance.now();
      slotOf[tail] = slot;
      size++;
      req.write(frames(slot));
    };

    const endIfIdle = (): void => {
      if (size === 0 && !ended && req !== undefined) {
        ended = true;
        req.end();
      }
    };

    const onAnswer = (field: number, chunk: Buffer, start: number, end: number): void => {
      if (size === 0) {
        if (meter.failure()) meter.describe(`stream ${index}: an answer arrived with no message in flight`);
        return;
      }
      const latency = performance.now() - (sentAt[head] ?? 0);
      const slot = slotOf[head] ?? 0;
      head = (head + 1) % window;
      size--;
      if (field === errorField) {
        if (meter.failure()) meter.describe(describeErrorAnswer(field, chunk, start, end));
      } else {
        meter.success(latency);
      }
      if (stopping) endIfIdle();
      else send(slot);
    };
    const parser = createFrameParser(onAnswer);

    const onResponse = (h: IncomingHttpHeaders): void => {
      grpcStatus = header(h, "grpc-status");
      grpcMessage = header(h, "grpc-message");
    };
    const onTrailers = (t: IncomingHttpHeaders): void => {
      const status = header(t, "grpc-status");
      if (status !== undefined) {
        grpcStatus = status;
        grpcMessage = header(t, "grpc-message");
      }
    };
    const onError = (err: Error): void => {
      error = err;
    };
    const onEnd = (): void => {
      // The server has finished the call (trailers, or a trailers-only error) while we may still be sending. It
      // need not reset the stream, and the stream only closes once both sides have ended: end ours. Not with a
      // reset (RST_STREAM CANCEL): a server that fails every stream at once would then see a stream of resets, and
      // Node's rapid-reset protection answers that with GOAWAY.
      if (!ended) {
        ended = true;
        req?.end();
      }
    };
    const onClose = (): void => {
      req = undefined;
      if (stopping) {
        open--;
        if (open === 0) drained?.();
        return;
      }
      // Ended by the server (or reset) while we were still sending: what it left unanswered failed.
      const lost = Math.max(size, 1);
      const why =
        error !== undefined
          ? describeError(error)
          : grpcStatus !== undefined && grpcStatus !== "0"
            ? describeStatus(grpcStatus, grpcMessage)
            : `the server ended the stream with ${size} messages unanswered (grpc-status ${String(grpcStatus)})`;
      for (let i = 0; i < lost; i++) {
        if (meter.failure()) meter.describe(`stream ${index}: ${why}`);
      }
      open--;
      bidi.open();
    };

    const bidi: Bidi = {
      open() {
        head = 0;
        size = 0;
        ended = false;
        grpcStatus = undefined;
        grpcMessage = undefined;
        error = undefined;
        parser.reset();
        try {
          req = session.request(headers);
        } catch (err) {
          fail(asError(err));
          return;
        }
        open++;
        req.on("response", onResponse);
        req.on("trailers", onTrailers);
        req.on("data", parser.feed);
        req.on("end", onEnd);
        req.on("error", onError);
        req.on("close", onClose);
        for (let k = 0; k < window; k++) send(firstSlot + k);
      },
      stop: endIfIdle,
    };
    return bidi;
  };

  // concurrency messages spread as evenly as they go: the first (concurrency % count) streams carry one more.
  const base = Math.floor(o.concurrency / count);
  const extra = o.concurrency % count;
  const bidis: Bidi[] = [];
  let firstSlot = 0;
  for (let j = 0; j < count; j++) {
    const window = base + (j < extra ? 1 : 0);
    bidis.push(createBidi(j, firstSlot, window));
    firstSlot += window;
  }

  return {
    start() {
      for (const b of bidis) b.open();
    },
    stop() {
      stopping = true;
      for (const b of bidis) b.stop();
      if (open === 0) return Promise.resolve();
      return withTimeout(
        new Promise<void>((resolve) => {
          drained = resolve;
        }),
        () => {
          log(`${open} streams still open ${drainTimeoutMs} ms after the window, abandoned`);
        },
      );
    },
  };
}

/**
 * A parser of length-prefixed gRPC frames that may be split or coalesced across DATA chunks. It reports each
 * complete message with the field number of its first tag (0 for an empty message, or a compressed one, whose
 * bytes it cannot read; we never offer compression, so a server should not use it) and, when the whole message
 * sits in the current chunk, where (`start` < `end`; otherwise both are -1).
 */
function createFrameParser(onMessage: (field: number, chunk: Buffer, start: number, end: number) => void): {
  feed: (chunk: Buffer) => void;
  reset: () => void;
} {
  let headerLeft = 5;
  let compressed = false;
  let length = 0;
  let remaining = 0;
  let tag = 0;
  let shift = 0;
  let tagDone = false;

  const complete = (chunk: Buffer, start: number, end: number): void => {
    const field = tagDone && !compressed ? Math.floor(tag / 8) : 0;
    headerLeft = 5;
    length = 0;
    onMessage(field, chunk, start, end);
  };

  return {
    feed(chunk: Buffer): void {
      const n = chunk.length;
      // Where the current message began in this chunk; -1 while it is one begun in an earlier chunk.
      let start = -1;
      let i = 0;
      while (i < n) {
        if (headerLeft > 0) {
          const b = chunk[i++] ?? 0;
          if (headerLeft === 5) compressed = b !== 0;
          else length = length * 256 + b;
          headerLeft--;
          if (headerLeft === 0) {
            remaining = length;
            tag = 0;
            shift = 0;
            tagDone = false;
            start = i;
            if (remaining === 0) complete(chunk, i, i);
          }
          continue;
        }
        const take = Math.min(remaining, n - i);
        // The tag is a varint: field 20 is two bytes (0xa2 0x01), and it may straddle chunks.
        for (let j = i; !tagDone && j < i + take; j++) {
          const b = chunk[j] ?? 0;
          tag += (b & 0x7f) * 2 ** shift;
          shift += 7;
          if (b < 0x80 || shift >= 35) tagDone = true;
        }
        i += take;
        remaining -= take;
        if (remaining === 0) complete(chunk, start, start === -1 ? -1 : i);
      }
    },
    reset(): void {
      headerLeft = 5;
      length = 0;
      remaining = 0;
    },
  };
}

/** Ready-made frames per template, copied for every message and given a fresh UUID where the placeholder was. */
function createFrameSource(templates: readonly Uint8Array[], placeholder: string | undefined): FrameSource {
  const needle = placeholder === undefined ? undefined : Buffer.from(placeholder, "latin1");
  const entries = templates.map((template, i) => {
    const frame = Buffer.allocUnsafe(5 + template.length);
    frame[0] = 0;
    frame.writeUInt32BE(template.length, 1);
    frame.set(template, 5);
    const offsets: number[] = [];
    if (needle === undefined) return { frame, offsets };
    for (let at = frame.indexOf(needle, 5); at !== -1; at = frame.indexOf(needle, at + needle.length)) offsets.push(at);
    if (offsets.length === 0) throw new Error(`template ${i} does not contain the placeholder`);
    return { frame, offsets };
  });
  return (slot) => {
    const entry = at(entries, slot % entries.length);
    // A copy each time: http2 may still hold the previous frame when the next is written.
    const frame = Buffer.from(entry.frame);
    if (entry.offsets.length === 0) return frame;
    const id = randomUUID();
    for (const offset of entry.offsets) frame.write(id, offset, "latin1");
    return frame;
  };
}

function createMeter(): Meter {
  let measuring = false;
  let completed = 0;
  let errors = 0;
  let firstError: string | undefined;
  let startedAt = 0;
  let cpuAtStart = process.cpuUsage();
  const latencies = createReservoir(reservoirCapacity);
  return {
    success(latencyMs) {
      if (!measuring) return;
      completed++;
      latencies.add(latencyMs);
    },
    failure() {
      if (!measuring) return false;
      errors++;
      return firstError === undefined;
    },
    describe(text) {
      firstError ??= text;
    },
    begin() {
      completed = 0;
      errors = 0;
      firstError = undefined;
      latencies.clear();
      measuring = true;
      startedAt = performance.now();
      cpuAtStart = process.cpuUsage();
    },
    end() {
      measuring = false;
      const durationMs = performance.now() - startedAt;
      const cpu = process.cpuUsage(cpuAtStart);
      const sorted = latencies.sorted();
      return {
        completed,
        errors,
        durationMs,
        perSecond: completed / (durationMs / 1_000),
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        clientCpuMs: (cpu.user + cpu.system) / 1_000,
        ...(firstError === undefined ? {} : { firstError }),
      };
    },
  };
}

/** Every value until `capacity`, then a uniform random sample of all of them (Algorithm R). */
function createReservoir(capacity: number): { add(v: number): void; clear(): void; sorted(): Float64Array } {
  const values = new Float64Array(capacity);
  let seen = 0;
  return {
    add(v) {
      if (seen < capacity) values[seen] = v;
      else {
        const j = Math.floor(Math.random() * (seen + 1));
        if (j < capacity) values[j] = v;
      }
      seen++;
    },
    clear() {
      seen = 0;
    },
    sorted() {
      // A typed array sorts numerically.
      return values.slice(0, Math.min(seen, capacity)).sort();
    },
  };
}

/** Nearest-rank percentile of ascending `values`. */
function percentile(values: Float64Array, p: number): number {
  if (values.length === 0) return Number.NaN;
  const rank = Math.min(values.length, Math.max(1, Math.ceil((p / 100) * values.length)));
  return values[rank - 1] ?? Number.NaN;
}

function requestHeaders(path: string): OutgoingHttpHeaders {
  // http2 copies these on every request, so one object serves all of them.
  return { ":method": "POST", ":path": path, "content-type": "application/grpc+proto", te: "trailers" };
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function describeStatus(status: string, message: string | undefined): string {
  if (message === undefined) return `grpc-status ${status}`;
  let text = message;
  try {
    text = decodeURIComponent(message);
  } catch {
    // Not valid percent-encoding: show it as it came.
  }
  return `grpc-status ${status}: ${text}`;
}

function describeError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code === undefined ? err.message : `${code}: ${err.message}`;
}

/** The first error answer, its bytes shown as text so that an error's message string can be read. */
function describeErrorAnswer(field: number, chunk: Buffer, start: number, end: number): string {
  if (start < 0) return `an answer with field ${field} (an error), split across chunks`;
  const bytes = chunk.subarray(start, Math.min(end, start + 256));
  const text = bytes.toString("latin1").replace(/[^\x20-\x7e]/g, ".");
  return `an answer with field ${field} (an error), ${end - start} bytes: "${text}"`;
}

function withTimeout(done: Promise<void>, onTimeout: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      onTimeout();
      resolve();
    }, drainTimeoutMs);
  });
  return Promise.race([done, timeout]).finally(() => {
    clearTimeout(timer);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function at<T>(items: readonly T[], index: number): T {
  const item = items[index];
  if (item === undefined) throw new Error(`no item ${index} of ${items.length}`);
  return item;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function log(message: string): void {
  process.stderr.write(`grpc-load: ${message}\n`);
}

function reply(message: GrpcLoadReply): void {
  // Exit as soon as the answer is out: nothing else is left to do, and lingering handles must not keep us alive.
  process.send?.(message, () => process.exit(message.type === "result" ? 0 : 1));
}

if (process.send === undefined) {
  log("this is the child of runGrpcLoad (bench/grpc-load.ts) and must be forked with an IPC channel");
  process.exit(2);
}
// The parent is gone (killed, crashed): nobody will read a result.
process.on("disconnect", () => process.exit(1));
process.on("uncaughtException", (err) => {
  reply({ type: "error", message: err.message, ...(err.stack === undefined ? {} : { stack: err.stack }) });
});
process.once("message", (message: GrpcLoadRequest) => {
  runLoad(message.options).then(
    (result) => {
      reply({ type: "result", result });
    },
    (err: unknown) => {
      const error = asError(err);
      reply({ type: "error", message: error.message, ...(error.stack === undefined ? {} : { stack: error.stack }) });
    },
  );
});
