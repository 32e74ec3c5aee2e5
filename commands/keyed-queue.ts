/**
 * Runs tasks one at a time per key, in the order they were queued, and tasks of different keys concurrently.
 */
export interface KeyedQueue {
  /** Queues `task` behind every task already queued for `key`; settles as the task does. */
  run<T>(key: string, task: () => Promise<T>): Promise<T>;
  /** Keys with at least one task queued or running. */
  readonly size: number;
}

/** Creates an empty {@link KeyedQueue}. A key's entry is removed as soon as its last task settles. */
export function createKeyedQueue(): KeyedQueue {
  const tails = new Map<string, Promise<unknown>>();
  return {
    run<T>(key: string, task: () => Promise<T>): Promise<T> {
      const previous = tails.get(key);
      const result = previous === undefined ? task() : previous.then(task, task);
      // The tail never rejects, so a failed task does not fail the ones queued after it.
      const tail = result.then(
        () => undefined,
        () => undefined,
      );
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      return result;
    },
    get size() {
      return tails.size;
    },
  };
}
