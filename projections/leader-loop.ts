import type { Logger } from "pino";
import type { Lease } from "./lease.js";

/** Where a leader loop is: waiting for the lease, working while it holds it, or stopped. */
export type LeaderState = "standby" | "running" | "stopped";

/** A piece of work done by one process at a time, the holder of a lease. */
export interface LeaderLoop {
  /** Stands by for the lease, works while it holds it, stands by again when it loses it. No-op while started. */
  start(): void;
  /** Ends the work under way (its signal aborts), releases the lease and resolves once stopped. */
  stop(): Promise<void>;
  state(): LeaderState;
  /** The last error the work ended with, until it next ends cleanly. */
  error(): string | undefined;
}

/**
 * Runs `work` while this process holds `lease`. `work` gets a signal that aborts when the lease is lost or the loop
 * stops; it should resolve soon after. When it throws, the error is logged and kept for status, and the work starts
 * again after `retryMs` (default 1 s) if the lease is still held, or once it is held again.
 */
export function createLeaderLoop(options: {
  readonly lease: Lease;
  readonly log: Logger;
  /** For the log: what the work is. */
  readonly name: string;
  readonly work: (signal: AbortSignal) => Promise<void>;
  readonly retryMs?: number;
}): LeaderLoop {
  const { lease, log, name, work } = options;
  const retryMs = options.retryMs ?? 1_000;
  let state: LeaderState = "stopped";
  let error: string | undefined;
  let stopping = new AbortController();
  let session = new AbortController();
  let running: Promise<void> | undefined;
  lease.onLost(() => {
    session.abort();
  });

  // A function, not the property: the checks below come after awaits, which narrowing does not see through.
  const isStopping = (): boolean => stopping.signal.aborted;

  const loop = async (): Promise<void> => {
    stopping.signal.addEventListener("abort", () => {
      session.abort();
    }, { once: true });
    while (!isStopping()) {
      state = "standby";
      try {
        await lease.acquire(stopping.signal);
      } catch {
        break; // stopping
      }
      state = "running";
      session = new AbortController();
      if (isStopping()) session.abort();
      try {
        await work(session.signal);
        error = undefined;
      } catch (err) {
        error = (err as Error).message;
        log.error({ err, work: name }, `${name} failed; starting again from its checkpoint`);
        await new Promise((resolve) => setTimeout(resolve, retryMs));
      }
      if (isStopping()) await lease.release();
    }
    state = "stopped";
  };

  return {
    start() {
      if (running !== undefined) return;
      stopping = new AbortController();
      running = loop().finally(() => {
        running = undefined;
      });
    },
    async stop() {
      stopping.abort();
      await running;
    },
    state: () => state,
    error: () => error,
  };
}
