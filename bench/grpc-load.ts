/**
 * A cheap gRPC load generator, so that a benchmark of our Connect/gRPC server measures the server and not the
 * client.
 *
 * Why it looks like this
 * On a two-core machine a generated client (connect-node, @grpc/grpc-js) spends more CPU per call than the server
 * it calls, so a benchmark driving the server through one mostly measures the client. This one sends
 * pre-encoded protobuf messages as raw gRPC frames over `node:http2` sessions (h2c, prior knowledge), never
 * decodes an answer beyond the tag of its first field, and runs in a child process, so it shares neither the
 * server's event loop nor its heap. Per message it only copies a ready-made frame and writes a fresh UUID over
 * the placeholder in it (a command id, so that the server's de-duplication does not short-circuit the work).
 *
 * The child is `grpc-load-worker.ts`, forked with tsx; options go to it and the result comes back over IPC
 * with the advanced (structured clone) serialization, so templates travel as bytes and NaN survives.
 */
import { fork } from "node:child_process";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { median } from "./measure.js";

/** What to send, how hard and for how long. */
export interface GrpcLoadOptions {
  /** The server's base URL, `http://host:port`; spoken as h2c with prior knowledge (no TLS, no upgrade). */
  readonly url: string;
  /** The method's HTTP path, e.g. `/foldline.marketplace.v1.WalletService/Deposit`. */
  readonly path: string;
  /** `unary`: one call per message; `stream`: bidirectional streams that each carry many messages. */
  readonly mode: "unary" | "stream";
  /** Protobuf-encoded request messages; slot `i` (a call or message in flight) sends `templates[i % length]`. */
  readonly templates: readonly Uint8Array[];
  /**
   * A 36-character ASCII string (a UUID) found in every template. Every message sent carries a fresh
   * `crypto.randomUUID()` in its place, written over every occurrence of it. Because the replacement has the same
   * length, the protobuf encoding stays valid. Omitted, the templates are sent unchanged (for calls that carry no
   * id, such as a baseline's no-op).
   */
  readonly placeholder?: string | undefined;
  /** Unary: calls in flight, one per slot. Stream: messages in flight in total, spread evenly over `streams`. */
  readonly concurrency: number;
  /**
   * Unary mode: calls per second in total, at most (each slot waits for its turn); without it, every slot sends
   * again as soon as its call is answered.
   */
  readonly ratePerSecond?: number | undefined;
  /** Stream mode: how many bidirectional streams (default 4, at most `concurrency`). */
  readonly streams?: number;
  /**
   * HTTP/2 connections; slots (unary) or streams (stream mode) are spread over them round-robin. Default: one per
   * 100 concurrent HTTP/2 streams, a common server limit and what Node's client assumes until the server's
   * SETTINGS arrive.
   */
  readonly sessions?: number;
  /** The measured time, in ms. */
  readonly durationMs: number;
  /** Load sent before the measured time and not counted, in ms (default 1000). */
  readonly warmupMs?: number;
  /**
   * Stream mode: an answer whose first field has this number counts as an error (our `ExecuteResponse` carries its
   * `CommandError` in field 20). Without it, every answer counts as a success.
   */
  readonly errorField?: number;
}

/**
 * What a run measured. Only what completes inside the measured window counts: answers to messages sent during
 * the warm-up that arrive inside it do, answers that arrive after it (while in-flight work drains) do not.
 */
export interface GrpcLoadResult {
  /** Successful calls (unary) or answers (stream) in the measured window. */
  readonly completed: number;
  /**
   * Failed ones: unary calls with a grpc-status other than 0 or a transport error; stream answers carrying
   * `errorField`, and messages left unanswered by a stream the server ended early or reset (at least 1 per such
   * stream).
   */
  readonly errors: number;
  /** The measured window's actual length, in ms. */
  readonly durationMs: number;
  /** `completed` per second of the window (errors excluded). */
  readonly perSecond: number;
  /** Median latency of the successful calls or answers, send to answer (unary: to the trailers), in ms. */
  readonly p50Ms: number;
  /** 99th percentile of the same, in ms; NaN when nothing succeeded. */
  readonly p99Ms: number;
  /** CPU time (user + system) the load generator's process spent during the window, in ms. */
  readonly clientCpuMs: number;
  /**
   * The first failure in the window: grpc-status and grpc-message of a unary call, the transport error, or the
   * first error answer (its bytes, shown as text) of a stream.
   */
  readonly firstError?: string;
}

/** What the parent sends the worker: one run, then the worker exits. */
export interface GrpcLoadRequest {
  readonly type: "run";
  readonly options: GrpcLoadOptions;
}

/** What the worker sends back: its result, or why it failed. */
export type GrpcLoadReply =
  | { readonly type: "result"; readonly result: GrpcLoadResult }
  | { readonly type: "error"; readonly message: string; readonly stack?: string };

/** Time allowed, beyond warm-up and measured window, for tsx to start the worker, connecting, draining and closing. */
const overheadMs = 60_000;
/** Time the worker gets to exit by itself once it has answered. */
const exitGraceMs = 2_000;

/**
 * Runs a load against a gRPC server from a child process and resolves with what it measured, once the child has
 * exited (so that it no longer competes for CPU with whatever runs next).
 *
 * Rejects on invalid options (before starting anything), when the worker cannot connect, loses a connection,
 * fails, exits early or overruns its time. The child is killed on every way out, including this process exiting;
 * and it exits by itself if this process dies without a word (its IPC channel closes).
 */
export async function runGrpcLoad(options: GrpcLoadOptions): Promise<GrpcLoadResult> {
  validate(options);
  return runInChild(options);
}

function runInChild(options: GrpcLoadOptions): Promise<GrpcLoadResult> {
  const self = fileURLToPath(import.meta.url);
  // The worker sits beside this module under the same extension (.ts when run with tsx).
  const worker = join(dirname(self), `grpc-load-worker${extname(self)}`);
  const child = fork(worker, [], {
    execArgv: ["--import", "tsx"],
    // `--import tsx` is resolved from the working directory: the repository root has it in node_modules.
    cwd: dirname(dirname(self)),
    serialization: "advanced",
    // stdout is reserved for the benchmark's JSON lines: whatever the child prints goes to stderr.
    stdio: ["ignore", 2, 2, "ipc"],
  });
  const killChild = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.once("exit", killChild);

  return new Promise<GrpcLoadResult>((resolve, reject) => {
    let result: GrpcLoadResult | undefined;
    let settled = false;
    let graceTimer: NodeJS.Timeout | undefined;
    const settle = (outcome: { result: GrpcLoadResult } | { error: Error }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearTimeout(graceTimer);
      killChild();
      process.removeListener("exit", killChild);
      if ("result" in outcome) resolve(outcome.result);
      else reject(outcome.error);
    };

    const limitMs = (options.warmupMs ?? 1_000) + options.durationMs + overheadMs;
    const deadline = setTimeout(() => {
      settle({ error: new Error(`grpc-load: the worker did not finish within ${limitMs} ms; killed it`) });
    }, limitMs);

    child.on("message", (message: GrpcLoadReply) => {
      if (message.type === "result") {
        result = message.result;
        // Resolve once it has exited, or kill it if it lingers.
        graceTimer = setTimeout(() => {
          settle({ result: message.result });
        }, exitGraceMs);
      } else {
        const error = new Error(`grpc-load: the worker failed: ${message.message}`);
        if (message.stack !== undefined) error.stack = `${error.message}\n--- in the worker ---\n${message.stack}`;
        settle({ error });
      }
    });
    child.on("error", (err) => {
      settle({ error: new Error(`grpc-load: could not run the worker: ${err.message}`, { cause: err }) });
    });
    child.on("exit", (code, signal) => {
      if (result !== undefined) settle({ result });
      else {
        const how = signal === null ? `with code ${String(code)}` : `on ${signal}`;
        settle({ error: new Error(`grpc-load: the worker exited ${how} before answering (its stderr is above)`) });
      }
    });

    const request: GrpcLoadRequest = { type: "run", options };
    child.send(request, (err) => {
      if (err !== null) settle({ error: new Error(`grpc-load: could not send the worker its options: ${err.message}`, { cause: err }) });
    });
  });
}

/** Throws on options the worker could not honour, so that mistakes surface before a process is started. */
function validate(o: GrpcLoadOptions): void {
  const fail = (why: string): never => {
    throw new Error(`grpc-load: ${why}`);
  };
  const positiveInt = (name: string, n: number | undefined): void => {
    if (n !== undefined && !(Number.isInteger(n) && n > 0)) fail(`${name} must be a positive whole number, got ${n}`);
  };
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    return fail(`url is not a URL: "${o.url}"`);
  }
  if (url.protocol !== "http:") fail(`url must be http:// (h2c), got "${o.url}"`);
  if (!o.path.startsWith("/")) fail(`path must start with "/", got "${o.path}"`);
  const mode: string = o.mode; // callers in plain JS may pass anything
  if (mode !== "unary" && mode !== "stream") fail(`mode must be "unary" or "stream", got "${mode}"`);
  if (o.templates.length === 0) fail("templates is empty");
  const { placeholder } = o;
  if (placeholder !== undefined) {
    if (Buffer.byteLength(placeholder) !== 36 || placeholder.length !== 36) {
      fail(`placeholder must be 36 ASCII characters (a UUID), got "${placeholder}"`);
    }
    const needle = Buffer.from(placeholder);
    o.templates.forEach((t, i) => {
      if (Buffer.from(t.buffer, t.byteOffset, t.byteLength).indexOf(needle) === -1) fail(`template ${i} does not contain the placeholder`);
    });
  }
  positiveInt("concurrency", o.concurrency);
  positiveInt("streams", o.streams);
  positiveInt("sessions", o.sessions);
  positiveInt("errorField", o.errorField);
  if (o.mode === "stream" && (o.streams ?? 4) > o.concurrency) {
    fail(`concurrency (${o.concurrency}) must be at least streams (${o.streams ?? 4}): every stream needs a message in flight`);
  }
  if (!(Number.isFinite(o.durationMs) && o.durationMs > 0)) fail(`durationMs must be positive, got ${o.durationMs}`);
  if (o.warmupMs !== undefined && !(Number.isFinite(o.warmupMs) && o.warmupMs >= 0)) fail(`warmupMs must be 0 or more, got ${o.warmupMs}`);
}

/** The round whose rate is the median. */
export function medianRound(results: readonly GrpcLoadResult[]): GrpcLoadResult {
  const m = median(results.map((r) => r.perSecond));
  const closest = [...results].sort((a, b) => Math.abs(a.perSecond - m) - Math.abs(b.perSecond - m))[0];
  if (closest === undefined) throw new Error("no rounds");
  return closest;
}
