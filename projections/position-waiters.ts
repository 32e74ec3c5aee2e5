/** Callers waiting for a position to be reached: a projector's or a reactor's read-your-writes. */
export interface PositionWaiters {
  /** Resolves true once `reached` has been told of `target` or a later position, false after `timeoutMs`. */
  waitFor(target: number, timeoutMs: number): Promise<boolean>;
  /** Tells the waiters that every position up to `position` has been reached. */
  reached(position: number): void;
}

/** Waiters over a position that only grows; `current` is where it stands now. */
export function createPositionWaiters(current: () => number): PositionWaiters {
  const waiters = new Set<{ position: number; resolve: (reached: boolean) => void }>();
  return {
    waitFor(target, timeoutMs) {
      if (target <= current()) return Promise.resolve(true);
      return new Promise((resolve) => {
        const waiter = { position: target, resolve };
        waiters.add(waiter);
        setTimeout(() => {
          if (waiters.delete(waiter)) resolve(false);
        }, timeoutMs).unref();
      });
    },
    reached(position) {
      for (const w of waiters) {
        if (w.position <= position) {
          waiters.delete(w);
          w.resolve(true);
        }
      }
    },
  };
}
