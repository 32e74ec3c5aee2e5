import type { Logger } from "pino";
import type { EventStore } from "../streams/event-store.js";

/** The stream's head as a projector last read it: for `lag`, and to tell a stalled projector. */
export interface HeadWatch {
  /** The highest head read so far; 0 before the first read. Stale, not failing, while NATS does not answer. */
  head(): number;
  /** Reads the head again unless it was read less than a second ago or a read is under way. */
  refresh(): void;
  /** Reads the head now and then about once a second until {@link HeadWatch.stop}. */
  start(): void;
  stop(): void;
}

/**
 * Creates a head watch over `store`. `onHead` hears every head read. A failing read is logged once per outage
 * (as `label`'s), not once a second, and the watch keeps the last head it knew.
 */
export function createHeadWatch(store: EventStore, log: Logger, label: string, onHead: (head: number) => void = () => undefined): HeadWatch {
  let head = 0;
  let readAt = -Infinity;
  let reading = false;
  let failing = false;
  let running = false;
  let timer: NodeJS.Timeout | undefined;
  const refresh = (): void => {
    const now = Date.now();
    if (reading || now - readAt < 1000) return;
    readAt = now;
    reading = true;
    store.head().then(
      (h) => {
        head = Math.max(head, h);
        onHead(head);
        if (failing) log.info({ projections: label, head }, "the stream's head can be read again");
        failing = false;
      },
      (err: unknown) => {
        if (!failing && running) log.warn({ err, projections: label }, "the stream's head cannot be read; lag is stale");
        failing = true;
      },
    ).finally(() => {
      reading = false;
    });
  };
  const tick = (): void => {
    refresh();
    timer = setTimeout(tick, Math.max(1, readAt + 1000 - Date.now())).unref();
  };
  return {
    head: () => head,
    refresh,
    start() {
      clearTimeout(timer);
      running = true;
      tick();
    },
    stop() {
      running = false;
      clearTimeout(timer);
    },
  };
}

/**
 * Whether a projector makes progress: it is stalled when it is behind the head and has neither applied a commit
 * nor been seen caught up for `stallAfterMs`.
 */
export interface StallMeter {
  /** It applied commits (or started): progress now. */
  advanced(): void;
  /** The head was read while the projector was at `position`: caught up counts as progress. */
  sawHead(head: number, position: number): void;
  /** Undefined while progressing; otherwise what to show as the projector's error. */
  stalled(head: number, position: number): string | undefined;
}

/** Creates a stall meter; see {@link StallMeter}. */
export function createStallMeter(stallAfterMs: number): StallMeter {
  let progressAt = Date.now();
  return {
    advanced() {
      progressAt = Date.now();
    },
    sawHead(head, position) {
      if (position >= head) progressAt = Date.now();
    },
    stalled(head, position) {
      const idleMs = Date.now() - progressAt;
      if (head <= position || idleMs < stallAfterMs) return undefined;
      return `no commit applied for ${Math.floor(idleMs / 1000)} s while ${head - position} behind the stream's head`;
    },
  };
}
