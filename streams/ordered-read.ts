import type { ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import { pause } from "./pause.js";

/** One ordered consumer's messages, and how to let go of it. */
export interface ConsumerRead {
  readonly messages: ConsumerMessages;
  /** Stops the messages and deletes the consumer, without waiting for the server. */
  close(): void;
}

/** Why a read was started again on a consumer of its own. */
export type RestartReason = "reconnected" | "stalled" | "ended";

/** What {@link pumpMessages} reports when it starts the read again. */
export interface ReadRestart {
  readonly reason: RestartReason;
  /** The stream sequence the new consumer starts from: the one after the last message delivered. */
  readonly fromSeq: number;
  /** Why the consumer's messages ended, when they ended with an error. */
  readonly error?: unknown;
}

/** Options of {@link pumpMessages}. */
export interface PumpMessagesOptions {
  readonly fromSeq: number;
  /** Creates an ordered consumer from a sequence on; rejects when NATS does not answer. */
  readonly open: (fromSeq: number) => Promise<ConsumerRead>;
  /** Whether the stream holds a message of the read's subjects at `seq` or after; rejects when NATS does not answer. */
  readonly holdsFrom: (seq: number) => Promise<boolean>;
  /** Registers a listener called each time the connection is re-established; returns its removal. */
  readonly onReconnect: (listener: () => void) => () => void;
  /** Ends the read, at once even while it waits. */
  readonly signal: AbortSignal;
  /** How long the reader waits for a message before the stream is asked whether one is due (default 1 s). */
  readonly stallCheckMs?: number;
  /** Called once the first consumer is created. */
  readonly onOpen?: () => void;
  /** Called after each restart, once the new consumer is created. */
  readonly onRestart?: (restart: ReadRestart) => void;
}

// Backoff of the attempts to create a consumer again: from 100 ms, doubling, at most 2 s apart.
const firstRetryMs = 100;
const maxRetryMs = 2_000;

/**
 * Hands `deliver` the messages of an ordered consumer from `fromSeq` on, without end, staying live whatever the
 * client library's consumer does; a promise `deliver` returns is awaited before the next message (the consumer's
 * flow control does the rest). Resolves once `signal` has aborted, after the messages already delivered to the
 * client; rejects when the first consumer cannot be created or `deliver` throws. After the first consumer it
 * never gives up.
 *
 * The read starts again, on a new consumer from the message after the last one delivered, when:
 * - the connection is re-established (a restarted server has lost the consumer, and the client's own recovery
 *   can leave it waiting for messages it no longer asks for);
 * - the reader has waited two whole `stallCheckMs` for a message while the stream holds one it has not delivered
 *   (checked with one direct get, only while the reader waits);
 * - the consumer's messages end by themselves.
 *
 * Creating the new consumer is retried with backoff until it succeeds. Messages are never delivered twice or out
 * of order: the sequences it delivers only increase. The cost per message is a few assignments, no promise of its
 * own; the checks run on one timer per read.
 */
export async function pumpMessages(options: PumpMessagesOptions, deliver: (m: JsMsg) => void | Promise<void>): Promise<void> {
  const { signal, holdsFrom } = options;
  const stallCheckMs = options.stallCheckMs ?? 1_000;
  let next = options.fromSeq;
  let read: ConsumerRead | undefined = await options.open(next);
  options.onOpen?.();
  // Set by the watchers, read by the loop (widened: TypeScript does not see the other side).
  let restart = undefined as RestartReason | undefined;
  let waiting = false as boolean;
  let delivered = 0;

  const interrupt = (reason: RestartReason): void => {
    if (restart !== undefined || read === undefined) return;
    restart = reason;
    read.messages.stop();
  };
  const onAbort = (): void => {
    read?.messages.stop();
  };
  signal.addEventListener("abort", onAbort, { once: true });
  const stopWatchingReconnects = options.onReconnect(() => {
    interrupt("reconnected");
  });
  const watchdog = watchForStalls({
    stallCheckMs,
    waitingFor: () => (waiting && read !== undefined && restart === undefined ? { seq: next, delivered } : undefined),
    holdsFrom,
    stalled: () => {
      interrupt("stalled");
    },
  });
  try {
    // Aborted while the first consumer was being created: the listener came too late to hear it.
    if (isAborted(signal)) return;
    for (;;) {
      let error: unknown;
      const iterator = read.messages[Symbol.asyncIterator]();
      for (;;) {
        let got: IteratorResult<JsMsg>;
        waiting = true;
        try {
          got = await iterator.next();
        } catch (err) {
          error = err; // the consumer's messages ended with an error: start again
          break;
        } finally {
          waiting = false;
        }
        if (got.done === true) break;
        const m = got.value;
        if (m.seq < next) continue;
        delivered++;
        next = m.seq + 1;
        const wait = deliver(m);
        if (wait !== undefined) await wait;
      }
      if (isAborted(signal)) return;
      const reason: RestartReason = restart ?? "ended";
      read.close();
      read = undefined;
      restart = undefined;
      read = await reopen(options, next);
      if (read === undefined) return;
      options.onRestart?.({ reason, fromSeq: next, ...(error === undefined ? {} : { error }) });
    }
  } finally {
    watchdog.stop();
    stopWatchingReconnects();
    signal.removeEventListener("abort", onAbort);
    read?.close();
  }
}

/** Creates the consumer again from `fromSeq`, retrying with backoff; undefined once `signal` aborts. */
async function reopen(options: PumpMessagesOptions, fromSeq: number): Promise<ConsumerRead | undefined> {
  const { signal } = options;
  for (let waitMs = firstRetryMs; ; waitMs = Math.min(maxRetryMs, waitMs * 2)) {
    if (isAborted(signal)) return undefined;
    try {
      const read = await options.open(fromSeq);
      if (!isAborted(signal)) return read;
      read.close();
      return undefined;
    } catch {
      // NATS is not answering yet (a server still recovering its streams): try again.
    }
    await pause(waitMs, signal);
  }
}

/**
 * Checks every `stallCheckMs` whether the reader is waiting for a message the stream holds: the first tick that
 * finds the reader waiting with nothing delivered since the previous tick asks the stream; the next tick that
 * still finds it so declares the read stalled.
 */
function watchForStalls(options: {
  readonly stallCheckMs: number;
  /** What the reader waits for: the next sequence and a count of messages delivered; undefined while it is busy. */
  readonly waitingFor: () => { readonly seq: number; readonly delivered: number } | undefined;
  readonly holdsFrom: (seq: number) => Promise<boolean>;
  readonly stalled: () => void;
}): { stop(): void } {
  let lastDelivered = -1;
  let suspect = false;
  let checking = false;
  const tick = (): void => {
    const waiting = options.waitingFor();
    if (waiting === undefined || waiting.delivered !== lastDelivered) {
      lastDelivered = waiting?.delivered ?? -1;
      suspect = false;
      return;
    }
    if (suspect) {
      suspect = false;
      options.stalled();
      return;
    }
    if (checking) return;
    checking = true;
    options.holdsFrom(waiting.seq).then(
      (due) => {
        // Only if nothing came meanwhile.
        suspect = due && options.waitingFor()?.delivered === waiting.delivered;
      },
      () => {
        // NATS is not answering: nothing to conclude; a reconnect will start the read again.
      },
    ).finally(() => {
      checking = false;
    });
  };
  const timer = setInterval(tick, options.stallCheckMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
    },
  };
}

/** Whether `signal` has aborted; a call, so that an earlier check does not narrow it for TypeScript. */
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}
