/**
 * Publishes made in one turn of the event loop leave in one socket write.
 *
 * The NATS client writes its outbound buffer in a microtask queued by the first publish after a write. Commands
 * in flight resume one by one as their acknowledgements arrive, each a few `await`s deep, so without help
 * nearly every publish goes out in a write of its own: on a busy server the syscalls cost more than a tenth of
 * the CPU. Awaiting {@link publishTurn} before a publish holds it until the end of the current turn (a
 * `setImmediate`), where every publish held in that turn is released in one run of microtasks and the client
 * flushes them together. The delay is at most one turn: nothing when idle, and far less than a round trip when
 * busy.
 */

let waiting: (() => void)[] | undefined;

/** Resolves at the end of the current event-loop turn, together with every other caller of this turn. */
export function publishTurn(): Promise<void> {
  if (waiting === undefined) {
    const batch: (() => void)[] = [];
    waiting = batch;
    setImmediate(() => {
      waiting = undefined;
      for (const release of batch) release();
    });
  }
  const batch = waiting;
  return new Promise((resolve) => batch.push(resolve));
}
