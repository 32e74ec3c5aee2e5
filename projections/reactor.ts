import type { KV, Kvm } from "@nats-io/kv";
import type { Logger } from "pino";
import type { EventStore, StoredCommit } from "../streams/event-store.js";
import { createLeaderLoop } from "./leader-loop.js";
import { createPositionWaiters } from "./position-waiters.js";
import { createLease, leaseOwner, type Lease } from "./lease.js";
import { leasesBucket, processesBucket } from "../streams/topology.js";

/**
 * A reaction to the stream with side effects (a process manager): for some commits it issues commands. The
 * runtime feeds it every commit once, in stream order per key, and may feed a commit again after a crash or a
 * change of leader, so `react` must be idempotent: commands with ids derived from the commit, and a check that
 * the step is still due.
 */
export interface Reaction {
  /** Unique per bucket; its checkpoint is the key `checkpoint.<name>`, its parked commits `parked.<name>.<seq>`. */
  readonly name: string;
  /** The subjects it reacts to, as a JetStream filter (default: the whole stream). */
  readonly subjectFilter?: string;
  /**
   * What orders the reactions: commits with the same key are reacted to one at a time, in stream order; those of
   * different keys concurrently. Undefined for a commit the reaction ignores.
   */
  key(commit: StoredCommit): string | undefined;
  react(commit: StoredCommit, signal: AbortSignal): Promise<void>;
  /** Whether an error is worth retrying without limit (NATS away, a conflict): the step will succeed later. */
  transient(err: unknown): boolean;
}

/** What a reactor is doing. */
export interface ReactorStatus {
  readonly reaction: string;
  readonly state: "standby" | "running" | "stopped";
  /**
   * Every commit up to this stream sequence has been reacted to (or parked): the last one it read, of those its
   * subject filter lets through.
   */
  readonly position: number;
  /** Commits being reacted to now. */
  readonly inFlight: number;
  /** Commits whose reaction kept failing with an error that is not transient, set aside under `parked.<name>.*`. */
  readonly parked: number;
  /** The last error a reaction or the reactor failed with, while it lasts. */
  readonly error?: string;
}

/** Runs one reaction while it holds its lease. */
export interface Reactor {
  start(): void;
  stop(): Promise<void>;
  status(): ReactorStatus;
  /** Resolves true once every commit up to `position` has been reacted to, false after `timeoutMs`. */
  waitFor(position: number, timeoutMs: number): Promise<boolean>;
}

/** A commit set aside: what it was, why and after how many attempts. */
export interface ParkedReaction {
  readonly subject: string;
  readonly seq: number;
  readonly error: string;
  readonly attempts: number;
  readonly parkedAt: string;
}

/** Options of {@link createReactor}. */
export interface ReactorOptions {
  readonly store: EventStore;
  /** Holds the checkpoint and the parked commits (the `foldline-processes` bucket). */
  readonly kv: KV;
  readonly reaction: Reaction;
  /** One reactor at a time, so that two never race on the same step. */
  readonly lease: Lease;
  readonly log: Logger;
  /** Commits reacted to at once, at most (default 64). */
  readonly concurrency?: number;
  /** Attempts of a reaction failing with an error that is not transient, before its commit is parked (default 5). */
  readonly maxAttempts?: number;
  /** The first retry's delay; each next one doubles, up to 5 s (default 100 ms). */
  readonly backoffMs?: number;
}

const encode = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

/**
 * Creates a reactor. It follows the stream from its checkpoint and reacts to commits concurrently (one key at a
 * time), moving the checkpoint over the commits whose reactions have all finished, in order. A crash or a change of
 * leader replays the commits after the checkpoint; the reaction's idempotence makes that harmless.
 *
 * A reaction that throws is retried with backoff: without limit when the error is transient, else `maxAttempts`
 * times, after which the commit is parked (logged as an error, stored under `parked.<name>.<seq>`, counted in the
 * status) and the reactor goes on. Nothing fails silently.
 */
export function createReactor(options: ReactorOptions): Reactor {
  const { store, kv, reaction, log } = options;
  const concurrency = options.concurrency ?? 64;
  const maxAttempts = options.maxAttempts ?? 5;
  const backoffMs = options.backoffMs ?? 100;
  const checkpointKey = `checkpoint.${reaction.name}`;
  let position = 0;
  let inFlight = 0;
  let parked = 0;
  let error: string | undefined;
  const waiters = createPositionWaiters(() => position);
  const advanced = (): void => {
    waiters.reached(position);
  };

  const pause = (ms: number, signal: AbortSignal): Promise<void> =>
    new Promise((resolve) => {
      if (signal.aborted) {
        resolve();
        return;
      }
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    });

  /** Reacts to one commit until it succeeds, is parked, or the session ends (false: not finished). */
  const reactTo = async (commit: StoredCommit, signal: AbortSignal): Promise<boolean> => {
    // A function, not the property: the checks come after awaits, which narrowing does not see through.
    const ended = (): boolean => signal.aborted;
    let failures = 0;
    for (let attempt = 1; ; attempt++) {
      if (ended()) return false;
      try {
        await reaction.react(commit, signal);
        return true;
      } catch (err) {
        if (ended()) return false;
        error = (err as Error).message;
        if (!reaction.transient(err)) failures++;
        if (failures >= maxAttempts) {
          const entry: ParkedReaction = {
            subject: commit.subject,
            seq: commit.seq,
            error: error,
            attempts: attempt,
            parkedAt: new Date().toISOString(),
          };
          await kv.put(`parked.${reaction.name}.${commit.seq}`, encode(entry));
          parked++;
          log.error({ err, reaction: reaction.name, seq: commit.seq, subject: commit.subject, attempts: attempt },
            "reaction parked: it kept failing; see parked.<reaction>.<seq> in the processes bucket");
          return true;
        }
        const level = reaction.transient(err) ? "warn" : "error";
        log[level]({ err, reaction: reaction.name, seq: commit.seq, attempt }, "reaction failed; retrying");
        await pause(Math.min(5_000, backoffMs * 2 ** Math.min(attempt - 1, 16)), signal);
      }
    }
  };

  const work = async (leader: AbortSignal): Promise<void> => {
    const entry = await kv.get(checkpointKey);
    position = entry === null || entry.operation !== "PUT" ? 0 : entry.json<{ position: number }>().position;
    parked = await kv.keys(`parked.${reaction.name}.>`).then(async (keys) => {
      let n = 0;
      for await (const key of keys) if (key !== "") n++;
      return n;
    });
    error = undefined;
    advanced();

    // The session ends with the leadership, or at the first error that is not a reaction's own (the checkpoint or
    // a parked commit could not be written): then it starts again from the checkpoint.
    const session = new AbortController();
    const endSession = (): void => {
      session.abort();
    };
    leader.addEventListener("abort", endSession, { once: true });
    // A stop that came during the reads above fired before the listener was there: end the session now, or it
    // would follow the stream forever and its stop would never return.
    if (leader.aborted) endSession();
    const signal = session.signal;
    let fatal: Error | undefined;
    const fail = (err: unknown): void => {
      fatal ??= err instanceof Error ? err : new Error(String(err));
      session.abort();
    };

    // Commits read and not yet behind the checkpoint, in stream order; `done` once their reaction has finished.
    const pending: { seq: number; done: boolean }[] = [];
    const tails = new Map<string, Promise<void>>();
    let slotFree: (() => void) | undefined;
    let saving: Promise<void> | undefined;
    let saved = position;

    const save = (): void => {
      if (saving !== undefined || saved === position || fatal !== undefined) return;
      const to = position;
      saving = kv
        .put(checkpointKey, encode({ position: to }))
        .then(() => {
          saved = to;
        }, fail)
        .finally(() => {
          saving = undefined;
          save();
        });
    };
    const settle = (): void => {
      let moved = false;
      while (pending[0]?.done === true) {
        position = (pending.shift() as { seq: number }).seq;
        moved = true;
      }
      if (moved) {
        advanced();
        save();
      }
    };

    try {
      const filter = reaction.subjectFilter;
      const commits = store.follow({ fromSeq: position + 1, signal, ...(filter === undefined ? {} : { subjectFilter: filter }) });
      for await (const commit of commits) {
        const key = reaction.key(commit);
        const slot = { seq: commit.seq, done: key === undefined };
        pending.push(slot);
        if (key !== undefined) {
          while (inFlight >= concurrency && !signal.aborted) await new Promise<void>((resolve) => (slotFree = resolve));
          if (signal.aborted) break;
          inFlight++;
          const previous = tails.get(key) ?? Promise.resolve();
          const tail = previous.then(async () => {
            try {
              if (await reactTo(commit, signal)) {
                slot.done = true;
                settle();
              }
            } catch (err) {
              fail(err);
            } finally {
              inFlight--;
              slotFree?.();
              slotFree = undefined;
            }
          });
          tails.set(key, tail);
          void tail.then(() => {
            if (tails.get(key) === tail) tails.delete(key);
          });
        }
        settle();
      }
    } catch (err) {
      fail(err); // the stream could not be read
    }
    leader.removeEventListener("abort", endSession);
    // The session ended: let the reactions under way finish or give up, then save how far they got.
    await Promise.all(tails.values());
    await saving;
    save();
    await saving;
    if (fatal !== undefined) throw fatal;
  };

  const loop = createLeaderLoop({ lease: options.lease, log, name: `reaction ${reaction.name}`, work });
  return {
    start: () => {
      loop.start();
    },
    stop: () => loop.stop(),
    status: () => {
      const e = error ?? loop.error();
      return { reaction: reaction.name, state: loop.state(), position, inFlight, parked, ...(e === undefined ? {} : { error: e }) };
    },
    waitFor: (target, timeoutMs) => waiters.waitFor(target, timeoutMs),
  };
}

/**
 * Creates and starts the reactor of `reaction` with the engine's buckets: its checkpoint in `foldline-processes`,
 * its lease `reactor.<name>` in `foldline-leases`, renewed every `ttlMs / 3`.
 */
export async function startReactor(options: {
  readonly kvm: Kvm;
  readonly store: EventStore;
  readonly reaction: Reaction;
  readonly ttlMs: number;
  readonly log: Logger;
}): Promise<Reactor> {
  const { kvm, store, reaction, ttlMs, log } = options;
  const [kv, leases] = await Promise.all([kvm.open(processesBucket), kvm.open(leasesBucket)]);
  const owner = leaseOwner();
  const lease = createLease({ kv: leases, key: `reactor.${reaction.name}`, owner, ttlMs, log });
  const reactor = createReactor({ store, kv, reaction, lease, log });
  reactor.start();
  return reactor;
}
