import { ShuttingDown } from "./errors.js";

/** Options of {@link pipelined}. */
export interface PipelinedOptions {
  /** Requests started but not yet answered, at most (backpressure on the reader beyond it). */
  readonly maxInFlight: number;
  /** When aborted, no further request is read; those started are answered, then the stream fails with ShuttingDown. */
  readonly shutdown?: AbortSignal;
}

/**
 * Answers a stream of requests in order while handling up to `maxInFlight` of them concurrently. `handle` must
 * not reject: it turns a failure into an answer of its own. An error of the request stream itself ends the
 * answers after those already started.
 */
export async function* pipelined<Req, Res>(
  requests: AsyncIterable<Req>,
  handle: (request: Req) => Promise<Res>,
  options: PipelinedOptions,
): AsyncGenerator<Res> {
  const { maxInFlight, shutdown } = options;
  const started: Promise<Res>[] = [];
  // Written by the reader task, read by the loop below.
  const reader = { done: false, failure: undefined as Error | undefined };
  let wakeWriter: (() => void) | undefined;
  let wakeReader: (() => void) | undefined;
  const stopped = new Promise<"stopped">((resolve) => {
    if (shutdown?.aborted === true) resolve("stopped");
    shutdown?.addEventListener("abort", () => {
      resolve("stopped");
    }, { once: true });
  });

  const iterator = requests[Symbol.asyncIterator]();
  const reading = (async () => {
    try {
      for (;;) {
        while (started.length >= maxInFlight) {
          await new Promise<void>((resolve) => (wakeReader = resolve));
        }
        const next = await Promise.race([iterator.next(), stopped]);
        if (next === "stopped") {
          reader.failure = new ShuttingDown();
          void iterator.return?.();
          return;
        }
        if (next.done === true) return;
        started.push(handle(next.value));
        wakeWriter?.();
      }
    } catch (err) {
      reader.failure = err instanceof Error ? err : new Error(String(err));
    } finally {
      reader.done = true;
      wakeWriter?.();
    }
  })();

  for (;;) {
    const head = started[0];
    if (head === undefined) {
      if (reader.done) break;
      await new Promise<void>((resolve) => (wakeWriter = resolve));
      wakeWriter = undefined;
      continue;
    }
    const answer = await head;
    void started.shift(); // the answer awaited just above
    wakeReader?.();
    wakeReader = undefined;
    yield answer;
  }
  await reading;
  if (reader.failure !== undefined) throw reader.failure;
}
