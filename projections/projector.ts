import type { Logger } from "pino";
import type { EventStore, StoredCommit } from "../streams/event-store.js";
import type { ReadModelDb } from "./read-model-db.js";

/**
 * A read model: tables in the read-model database and how each commit changes them. A projection names no
 * infrastructure; the projector feeds it every commit of the stream in order, exactly once.
 */
export interface Projection {
  /** Unique per database; also the checkpoint's key. Letters, digits, '_' and '-'. */
  readonly name: string;
  /** Creates its tables when missing. Runs once when the projector starts. */
  migrate(db: ReadModelDb): void;
  /**
   * Prepares its statements and returns the function that applies one commit. That function runs inside the
   * batch's transaction: synchronous, deterministic, and ignoring commits of aggregates it does not model.
   * Throwing rolls the whole batch back.
   */
  prepare(db: ReadModelDb): (commit: StoredCommit) => void;
}

/** What a projector is doing. */
export interface ProjectorStatus {
  readonly projection: string;
  readonly state: "stopped" | "running" | "failed";
  /** The stream sequence of the last commit applied: the read model reflects the stream up to here. */
  readonly position: number;
  /** Commits applied since this projector started. */
  readonly commitsApplied: number;
  /** Transactions committed since this projector started. */
  readonly batches: number;
  /** Why it failed, when it did. */
  readonly error?: string;
}

/** Runs one projection: follows the stream from the checkpoint and applies commits in batches. */
export interface Projector {
  start(): void;
  /** Stops following after the batch under way; resolves once stopped. */
  stop(): Promise<void>;
  status(): ProjectorStatus;
  /**
   * Resolves true once the read model reflects `position` or a later one, false after `timeoutMs`. Positions
   * are stream sequences, as command responses return them.
   */
  waitFor(position: number, timeoutMs: number): Promise<boolean>;
}

/** Options of {@link createProjector}. */
export interface ProjectorOptions {
  readonly store: EventStore;
  readonly db: ReadModelDb;
  readonly projection: Projection;
  readonly log: Logger;
  /** Commits per transaction at most (default 500). */
  readonly batchSize?: number;
  /** Attempts of a failing batch before the projector stops in state `failed` (default 5). */
  readonly maxAttempts?: number;
}

/**
 * Creates a projector. Each batch of commits and the checkpoint (the last commit's sequence) are written in one
 * SQLite transaction, so a crash at any point neither loses a commit nor applies one twice: on start the
 * projector reads from the checkpoint on. A batch gathers what arrived in one turn of the event loop, up to
 * `batchSize`. A batch that throws is rolled back and retried with backoff; after `maxAttempts` the projector
 * stops, in state `failed`, with the error in its status and in the log, at the last good checkpoint.
 */
export function createProjector(options: ProjectorOptions): Projector {
  const { store, db, projection, log } = options;
  const batchSize = options.batchSize ?? 500;
  const maxAttempts = options.maxAttempts ?? 5;
  projection.migrate(db);
  const apply = projection.prepare(db);
  db.prepare("INSERT OR IGNORE INTO projection_checkpoints (projection, position, updated_at) VALUES (?, 0, ?)").run(
    projection.name,
    new Date().toISOString(),
  );
  const readCheckpoint = db.prepare<[string], { position: bigint }>(
    "SELECT position FROM projection_checkpoints WHERE projection = ?",
  );
  // The checkpoint moves only from where this projector left it: a second projector writing the same read model
  // finds it moved, and its batch rolls back instead of applying commits twice.
  const moveCheckpoint = db.prepare<[number, string, string, number]>(
    "UPDATE projection_checkpoints SET position = ?, updated_at = ? WHERE projection = ? AND position = ?",
  );
  const applyBatch = db.transaction((commits: readonly StoredCommit[], from: number) => {
    const last = commits[commits.length - 1];
    if (last === undefined) return;
    // First, so that a second writer stops on the moved checkpoint, not on whatever its commits would break.
    if (moveCheckpoint.run(last.seq, new Date().toISOString(), projection.name, from).changes !== 1) {
      throw new CheckpointMoved(projection.name, from);
    }
    for (const commit of commits) apply(commit);
  });

  let state: ProjectorStatus["state"] = "stopped";
  let error: string | undefined;
  let position = Number(readCheckpoint.get(projection.name)?.position ?? 0n);
  let commitsApplied = 0;
  let batches = 0;
  let running: Promise<void> | undefined;
  const waiters = new Set<{ position: number; resolve: (reached: boolean) => void }>();

  const advanced = (): void => {
    for (const w of waiters) {
      if (w.position <= position) {
        waiters.delete(w);
        w.resolve(true);
      }
    }
  };

  /** Applies `commits`, retrying with backoff; false when it gave up. */
  const flush = async (commits: StoredCommit[]): Promise<boolean> => {
    for (let attempt = 1; ; attempt++) {
      try {
        applyBatch(commits, position);
        break;
      } catch (err) {
        const first = commits[0]?.seq;
        if (attempt >= maxAttempts || err instanceof CheckpointMoved) {
          error = `${(err as Error).message} (commits ${first}..${commits[commits.length - 1]?.seq})`;
          log.error({ err, projection: projection.name, from: first }, "projection failed; stopped at its checkpoint");
          return false;
        }
        log.warn({ err, projection: projection.name, attempt, from: first }, "projection batch failed; retrying");
        await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
      }
    }
    commitsApplied += commits.length;
    batches++;
    position = commits[commits.length - 1]?.seq ?? position;
    advanced();
    return true;
  };

  let abort = new AbortController();
  const run = async (): Promise<void> => {
    const commits = store.follow({ fromSeq: position + 1, signal: abort.signal });
    let buffer: StoredCommit[] = [];
    let turn: Promise<"turn"> | undefined;
    // Commits already delivered resolve the iterator without I/O: by the end of the turn they are all here.
    const endOfTurn = (): Promise<"turn"> =>
      (turn ??= new Promise((resolve) => {
        setImmediate(() => {
          resolve("turn");
        });
      }));
    const drain = async (): Promise<boolean> => {
      turn = undefined;
      if (buffer.length === 0) return true;
      const batch = buffer;
      buffer = [];
      return flush(batch);
    };
    let next = commits.next();
    for (;;) {
      // With nothing buffered there is nothing to flush: wait for the next commit, however long it takes.
      const got = buffer.length === 0 ? await next : await Promise.race([next, endOfTurn()]);
      if (got === "turn") {
        if (await drain()) continue;
        fail();
        return;
      }
      if (got.done === true) break;
      buffer.push(got.value);
      if (buffer.length >= batchSize && !(await drain())) {
        fail();
        return;
      }
      next = commits.next();
    }
    // Stopped: what arrived before the stop is applied, so that the checkpoint is as far as it can be.
    if (!(await drain())) fail();
  };
  const fail = (): void => {
    state = "failed";
    abort.abort();
  };

  return {
    start() {
      if (state === "running") return;
      state = "running";
      error = undefined;
      abort = new AbortController();
      running = run().then(
        () => {
          if (state === "running") state = "stopped";
        },
        (err: unknown) => {
          state = "failed";
          error = (err as Error).message;
          log.error({ err, projection: projection.name }, "projection stopped: the stream could not be read");
        },
      );
    },

    async stop() {
      abort.abort();
      await running;
      if (state === "running") state = "stopped";
    },

    status: () => ({
      projection: projection.name,
      state,
      position,
      commitsApplied,
      batches,
      ...(error === undefined ? {} : { error }),
    }),

    waitFor(target, timeoutMs) {
      if (target <= position) return Promise.resolve(true);
      return new Promise((resolve) => {
        const waiter = { position: target, resolve };
        waiters.add(waiter);
        setTimeout(() => {
          if (waiters.delete(waiter)) resolve(false);
        }, timeoutMs).unref();
      });
    },
  };
}

/** Another projector has written the same read model: this one stops rather than apply commits twice. */
export class CheckpointMoved extends Error {
  readonly kind = "checkpoint-moved";
  constructor(projection: string, expected: number) {
    super(`the checkpoint of ${projection} is no longer at ${expected}: another projector writes this read model`);
    this.name = "CheckpointMoved";
  }
}
