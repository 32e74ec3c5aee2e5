import Database from "better-sqlite3";
import type { Logger } from "pino";
import type { EventStore, StoredCommit } from "../streams/event-store.js";
import type { ReadRestart } from "../streams/ordered-read.js";
import { pause } from "../streams/pause.js";
import { createParking } from "./parked.js";
import { createHeadWatch, createStallMeter } from "./progress.js";
import { createPositionWaiters } from "./position-waiters.js";
import type { ReadModelDb } from "./read-model-db.js";

/**
 * What a projector does with a poison commit, one whose apply still throws when it is applied alone, after
 * `maxAttempts`. Either way the commit is parked in `parked_commits` (see `listParked`) and logged as an error.
 *
 * - `"stop"`: the checkpoint stays before it and the projector stops in state `stopped-on-poison`. Starting it
 *   again (after fixing the projection) retries the commit; failing again adds to the parked row's attempts.
 * - `"skip"`: the parked row and the checkpoint's move past the commit are one transaction, and the projector
 *   goes on. The read model then lacks that commit's effect until an operator rebuilds it.
 */
export type PoisonPolicy = "stop" | "skip";

/**
 * A read model: tables in the read-model database and how each commit changes them. A projection names no
 * infrastructure; the projector feeds it every commit of the stream in order, exactly once.
 */
export interface Projection {
  /** Unique per database; also the checkpoint's key. Letters, digits, '_' and '-'. */
  readonly name: string;
  /** What to do with a commit that cannot be applied (default `"stop"`). See {@link PoisonPolicy}. */
  readonly onPoison?: PoisonPolicy;
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
  /**
   * - `running`: following the stream, and caught up or applying commits.
   * - `stalled`: running, but behind the stream's head (as last read) with no commit applied for `stallAfterMs`:
   *   the stream is not delivering (NATS away or not answering) or a batch takes that long.
   * - `retrying`: the database or the stream keeps failing for a reason that is no commit's fault (a full disk,
   *   I/O errors, a busy database, NATS away); it retries with backoff and goes on by itself once that passes.
   *   `error` says what fails.
   * - `failed`: it gave up for good: another projector moved the checkpoint (two writers of one read model).
   * - `stopped-on-poison`: it parked a commit it cannot apply and waits in front of it (policy `"stop"`).
   * - `stopped`: not started, stopped, or at its `until`.
   */
  readonly state: "stopped" | "running" | "stalled" | "retrying" | "failed" | "stopped-on-poison";
  /** The stream sequence of the last commit applied or skipped: the read model reflects the stream up to here. */
  readonly position: number;
  /**
   * The stream's last sequence as last read: at start, then at most once a second while running (by a timer,
   * and after batches). 0 before the first read; stale, not failing, while NATS does not answer.
   */
  readonly head: number;
  /** `head - position`, never negative: commits the read model is behind by, as far as it knows. */
  readonly lag: number;
  /**
   * Commits applied per second over the last 5 to 6 s (the 5 whole seconds of the clock before the current one,
   * and the current one so far); over the time since `start()` when that is shorter, but never less than 1 s.
   */
  readonly commitsPerSecond: number;
  /** Commits applied since this projector was created. */
  readonly commitsApplied: number;
  /** Transactions that applied commits since this projector was created. */
  readonly batches: number;
  /** Commits of this projection in `parked_commits`: not reflected in the read model. */
  readonly parked: number;
  /** Why it failed, stalls, retries or stopped on a poison commit, when it does. */
  readonly error?: string;
}

/** Runs one projection: follows the stream from the checkpoint and applies commits in batches. */
export interface Projector {
  /** Starts following, or starts again after a stop, a failure or a poison commit; no-op while running. */
  start(): void;
  /** Stops following after the batch under way (cutting its retries short); resolves once stopped. */
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
  /**
   * Attempts of a failing transaction (default 5): of a batch before its commits are applied one at a time, and
   * of a single commit before it is parked. When the database itself fails, attempts go on without limit after
   * these, and the projector shows `retrying`.
   */
  readonly maxAttempts?: number;
  /** Longest pause between two attempts (default 2 000 ms): how soon a projector resumes once its trouble passes. */
  readonly maxRetryDelayMs?: number;
  /** Behind the head with no commit applied for this long, a running projector shows `stalled` (default 5 000 ms). */
  readonly stallAfterMs?: number;
  /**
   * The last stream sequence to apply: the projector applies the commits up to it and no further, then stops by
   * itself (state `stopped`, position `until`, or the last commit before it when that sequence holds no commit of
   * the stream, say a deleted one). Unset, it follows the stream without end. Rebuilds use it to bring a read
   * model to an exact position.
   */
  readonly until?: number;
}

/**
 * Creates a projector. Each batch of commits and the checkpoint (the last commit's sequence) are written in one
 * SQLite transaction, so a crash at any point neither loses a commit nor applies one twice: on start the
 * projector reads from the checkpoint on. A batch gathers what arrived in one turn of the event loop, up to
 * `batchSize`.
 *
 * A batch that throws is rolled back and retried with backoff. After `maxAttempts` its commits are applied one
 * per transaction up to the one that fails; that one is retried alone, `maxAttempts` times, then parked as the
 * projection's {@link PoisonPolicy} says. Errors that are not the commit's fault are never parked. When SQLite
 * fails for the environment (busy, I/O, disk full…) the batch is retried without limit, with backoff up to
 * `maxRetryDelayMs`, in state `retrying` at the last checkpoint, and the projector goes on by itself once the
 * database works again; a read of the stream that fails is started again the same way. When another projector
 * moved the checkpoint it stops at once in state `failed`, with the error in its status and in the log.
 *
 * It is a {@link createProjectorGroup} of one projection.
 */
export function createProjector(options: ProjectorOptions): Projector {
  const { projection, ...rest } = options;
  const [projector] = createProjectorGroup({ ...rest, projections: [projection] }).projectors;
  if (projector === undefined) throw new Error("a group of one projection has one projector");
  return projector;
}

/** Options of {@link createProjectorGroup}: those of {@link createProjector}, with several projections. */
export interface ProjectorGroupOptions extends Omit<ProjectorOptions, "projection"> {
  /** The projections of `db`, names unique. */
  readonly projections: readonly Projection[];
}

/** Projectors of several projections on one read-model database, fed by one read of the stream. */
export interface ProjectorGroup {
  /**
   * One projector per projection, in the order of `projections`, each with its own checkpoint, status, poison
   * handling and `waitFor`, each started and stopped on its own, exactly as {@link createProjector}'s.
   */
  readonly projectors: readonly Projector[];
  /** Starts every projector of the group. */
  start(): void;
  /** Stops every projector of the group; resolves once all have stopped. */
  stop(): Promise<void>;
}

/**
 * Creates the projectors of several projections that share one read of the stream and one transaction per
 * batch: reading and decoding the stream once instead of once per projection is most of what a rebuild costs.
 *
 * Every guarantee of {@link createProjector} holds for each projection: a batch moves every checkpoint it
 * concerns and applies its commits in one transaction, so that a crash neither loses nor double-applies a commit
 * for any of them. The read starts after the lowest checkpoint of the running projectors; a projection whose
 * checkpoint is further on is given only the commits after it. When a batch fails in the shared transaction,
 * each projection applies it again in transactions of its own, with the retries, backoff and poison handling
 * of a projector alone (the shared attempt is not counted in `maxAttempts`), so that one projection's poison
 * commit or moved checkpoint stops that projection only; the others go on. A projection started again behind
 * the read makes the read start again from its checkpoint.
 */
export function createProjectorGroup(options: ProjectorGroupOptions): ProjectorGroup {
  const { store, db, log } = options;
  const batchSize = options.batchSize ?? 500;
  const maxRetryDelayMs = options.maxRetryDelayMs ?? 2_000;
  const until = options.until ?? Number.POSITIVE_INFINITY;
  const names = options.projections.map((p) => p.name);
  if (new Set(names).size !== names.length) throw new Error(`projection names must be unique in a group: ${names.join(", ")}`);
  const label = names.join(",");

  // The stream's head, for `lag` and stalls: one request a second at most, whoever asks.
  const heads = createHeadWatch(store, log, label, (head) => {
    for (const m of members) m.sawHead(head);
  });

  // The read under way; the projections it is for, each given every commit after its checkpoint; the last
  // sequence handed to them; and whether the read must start again further back.
  let running: Promise<void> | undefined;
  let read: AbortController | undefined;
  const inRead = new Set<Member>();
  let delivered = 0;
  let restart = false;
  // The batch under way, which a projector that stops waits for.
  let flushing: Promise<unknown> | undefined;
  // Set while the last projectors drain what the read delivered before they stopped.
  let draining = false;

  const group: GroupHooks = {
    head: () => heads.head(),
    refreshHead: () => {
      heads.refresh();
    },
    started(member) {
      inRead.delete(member);
      if (running === undefined) {
        startRun();
        return;
      }
      heads.refresh();
      // The read under way has handed out commits after this projection's checkpoint: it starts again from there.
      if (member.position() >= delivered) inRead.add(member);
      else {
        restart = true;
        read?.abort();
      }
    },
    async stopping() {
      if (members.some((m) => m.wanted())) await flushing;
      else {
        read?.abort();
        await running;
      }
    },
  };
  const members = options.projections.map((projection) => createMember(projection, options, group));

  /**
   * The projections a batch is for: in the read, not stopping (unless the read is draining for the last stop),
   * and behind the batch's end. Those that left the read (stopped, failed, parked a commit) leave it for good.
   */
  const takers = (last: number): Member[] => {
    const batch: Member[] = [];
    for (const m of inRead) {
      if (m.state() !== "running") inRead.delete(m);
      else if ((draining || m.wanted()) && m.position() < last) batch.push(m);
    }
    return batch;
  };

  const applyTogether = db.transaction((commits: readonly StoredCommit[], batch: readonly Member[]): number[] =>
    batch.map((m) => m.applyInTransaction(commits)),
  );

  /** Applies `commits` to every projection it is for; false once no projection is running. */
  const flushAll = async (commits: readonly StoredCommit[]): Promise<boolean> => {
    const last = commits[commits.length - 1];
    if (last === undefined) return true;
    const batch = takers(last.seq);
    delivered = last.seq;
    const only = batch[0];
    if (batch.length === 1 && only !== undefined) {
      await only.flush(commits);
    } else if (batch.length > 1) {
      let cleared: number[] | undefined;
      try {
        cleared = applyTogether(commits, batch);
      } catch (err) {
        log.warn(
          { err, projections: batch.map((m) => m.name).join(","), from: commits[0]?.seq, to: last.seq },
          "projection batch failed; applying it for each projection on its own",
        );
      }
      if (cleared === undefined) for (const m of batch) await m.flush(commits);
      else {
        for (const [i, m] of batch.entries()) m.applied(commits, cleared[i] ?? 0);
      }
    }
    return members.some((m) => m.state() === "running");
  };
  const flush = (commits: readonly StoredCommit[]): Promise<boolean> => {
    const done = flushAll(commits);
    flushing = done;
    return done;
  };

  /** The projections that run have reached `until`: each stops by itself. */
  const reachedUntil = (ctl: AbortController): void => {
    for (const m of members) m.finished();
    ctl.abort();
  };

  /** Follows the stream from `fromSeq` until `ctl` aborts, no projection is running, or `until` is reached. */
  const follow = async (ctl: AbortController, fromSeq: number): Promise<void> => {
    if (fromSeq > until) {
      reachedUntil(ctl);
      return;
    }
    // A batch is what has arrived, up to `batchSize`. What arrives after a stop is still applied, so that the
    // checkpoints are as far as they can be.
    const onRestart = (r: ReadRestart): void => {
      log.info({ projections: label, reason: r.reason, fromSeq: r.fromSeq, err: r.error }, "the read of the stream started again");
    };
    const onOpen = (): void => {
      for (const m of members) m.readFailed(undefined);
    };
    for await (const batch of store.followBatches({ fromSeq, signal: ctl.signal, maxBatch: batchSize, onOpen, onRestart })) {
      const last = batch[batch.length - 1]?.seq ?? 0;
      const commits = last > until ? batch.filter((c) => c.seq <= until) : batch;
      draining = ctl.signal.aborted && !restart;
      try {
        if (!(await flush(commits))) {
          ctl.abort();
          return;
        }
      } finally {
        draining = false;
      }
      if (last >= until) {
        reachedUntil(ctl);
        return;
      }
    }
  };

  /**
   * Reads from the lowest checkpoint of the projections that run, again from further back when one asks. A read
   * that fails (NATS away when its consumer is created) is started again with backoff, the projections showing
   * `retrying` meanwhile.
   */
  const run = async (): Promise<void> => {
    for (let failures = 0; ; ) {
      const wanted = members.filter((m) => m.wanted());
      if (wanted.length === 0) return;
      inRead.clear();
      for (const m of wanted) inRead.add(m);
      delivered = Math.min(...wanted.map((m) => m.position()));
      restart = false;
      const ctl = (read = new AbortController());
      try {
        await follow(ctl, delivered + 1);
        if (failures > 0) log.info({ projections: label }, "the stream can be read again");
        failures = 0;
      } catch (err) {
        if (failures === 0) log.error({ err, projections: label }, "the stream cannot be read; trying again");
        failures++;
        for (const m of wanted) m.readFailed(err);
        await pause(retryDelay(failures, maxRetryDelayMs), ctl.signal);
      }
    }
  };

  const startRun = (): void => {
    heads.start();
    // `run` retries a read that fails; what still reaches here is a fault of the projector itself.
    const thisRun: Promise<void> = run().catch((err: unknown) => {
      log.error({ err, projections: label }, "projection stopped: its read failed unexpectedly");
      for (const m of members) m.failed(err);
    }).finally(() => {
      if (running !== thisRun) return;
      running = undefined;
      read = undefined;
      heads.stop();
      // A projector started while the read was ending.
      if (members.some((m) => m.wanted())) startRun();
    });
    running = thisRun;
  };

  const projectors = members.map((m) => m.projector);
  return {
    projectors,
    start() {
      for (const p of projectors) p.start();
    },
    async stop() {
      await Promise.all(projectors.map((p) => p.stop()));
    },
  };
}

/** What a member of a group asks of it. */
interface GroupHooks {
  head(): number;
  refreshHead(): void;
  /** The member has started: the read begins, or starts again from further back when it must. */
  started(member: Member): void;
  /** The member is stopping: resolves after the batch under way, or once the read has ended when it was the last. */
  stopping(): Promise<void>;
}

/** One projection of a group: its checkpoint, state, retries and poison handling. */
interface Member {
  readonly name: string;
  readonly projector: Projector;
  state(): ProjectorStatus["state"];
  position(): number;
  /** Running and not stopping: the read is for it. */
  wanted(): boolean;
  /** Inside a transaction: moves the checkpoint and applies the commits after it; returns parked rows cleared. */
  applyInTransaction(commits: readonly StoredCommit[]): number;
  /** After the transaction of {@link Member.applyInTransaction} has committed. */
  applied(commits: readonly StoredCommit[], cleared: number): void;
  /** Applies the commits after its checkpoint in transactions of its own, with retries and poison handling. */
  flush(commits: readonly StoredCommit[]): Promise<boolean>;
  /** The read failed unexpectedly with `err`: a running projector fails. */
  failed(err: unknown): void;
  /** The read failed with `err` and starts again after a pause (undefined: it reads again). */
  readFailed(err: unknown): void;
  /** The stream's head as just read: a projector at or past it is caught up. */
  sawHead(head: number): void;
  /** The group's `until` is reached: a running projector stops. */
  finished(): void;
}

function createMember(projection: Projection, options: ProjectorGroupOptions, group: GroupHooks): Member {
  const { db, log } = options;
  const maxAttempts = options.maxAttempts ?? 5;
  const maxRetryDelayMs = options.maxRetryDelayMs ?? 2_000;
  const skipPoison = projection.onPoison === "skip";
  projection.migrate(db);
  const apply = projection.prepare(db);
  const parking = createParking(db, projection.name);
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
  const casCheckpoint = (to: number, from: number): void => {
    if (moveCheckpoint.run(to, new Date().toISOString(), projection.name, from).changes !== 1) {
      throw new CheckpointMoved(projection.name, from);
    }
  };
  /** Applies the commits of `commits` after the checkpoint `from`; returns how many parked rows they resolved. */
  const applyCommits = (commits: readonly StoredCommit[], from: number): number => {
    const last = commits[commits.length - 1];
    if (last === undefined || last.seq <= from) return 0;
    // First, so that a second writer stops on the moved checkpoint, not on whatever its commits would break.
    casCheckpoint(last.seq, from);
    for (const commit of commits) if (commit.seq > from) apply(commit);
    // A commit parked by policy "stop" and now applied is no longer parked.
    return parkedAhead > 0 ? parking.clear(from + 1, last.seq) : 0;
  };
  const applyBatch = db.transaction(applyCommits);
  /** Parks `commit`; moves the checkpoint past it when `to` is its sequence, checks it is still `from` always. */
  const parkCommit = db.transaction((commit: StoredCommit, error: string, attempts: number, to: number, from: number) => {
    casCheckpoint(to, from);
    parking.park(commit, error, attempts);
  });

  let state: ProjectorStatus["state"] = "stopped";
  let error: string | undefined;
  let position = Number(readCheckpoint.get(projection.name)?.position ?? 0n);
  let commitsApplied = 0;
  let batches = 0;
  let parked = parking.count();
  // Parked rows after the checkpoint (left by policy "stop"): while there are any, batches clear what they apply.
  let parkedAhead = 0;
  let abort = new AbortController();
  // What it retries while the database fails (set after `maxAttempts`), or while the read fails.
  let retrying: string | undefined;
  let readFailure: string | undefined;
  const progress = createStallMeter(options.stallAfterMs ?? 5_000);
  const waiters = createPositionWaiters(() => position);
  const rate = createRate();

  const advanced = (): void => {
    waiters.reached(position);
  };

  /** Counts what a committed transaction applied and moves the position to its last commit. */
  const applied = (commits: readonly StoredCommit[], cleared: number): void => {
    const first = commits[0];
    const last = commits[commits.length - 1];
    if (first === undefined || last === undefined || last.seq <= position) return;
    const count = first.seq > position ? commits.length : commits.filter((c) => c.seq > position).length;
    commitsApplied += count;
    batches++;
    rate.add(count);
    position = last.seq;
    progress.advanced();
    if (cleared > 0) {
      parkedAhead -= cleared;
      parked = parking.count();
      log.info({ projection: projection.name, from: first.seq, to: last.seq, cleared }, "parked commits applied after all");
    }
    advanced();
    group.refreshHead();
  };

  const stopping = (): boolean => abort.signal.aborted;

  /**
   * Applies `commits` in one transaction, retrying with backoff: "applied"; "stopping" when stop() came during
   * the retries; or the last error and the attempts made.
   */
  const attempt = async (
    commits: readonly StoredCommit[],
  ): Promise<"applied" | "stopping" | { readonly err: unknown; readonly attempts: number }> => {
    const first = commits[0]?.seq;
    const last = commits[commits.length - 1]?.seq ?? position;
    for (let n = 1; ; n++) {
      try {
        applied(commits, applyBatch(commits, position));
        if (retrying !== undefined) {
          log.info({ projection: projection.name, from: first, to: last, attempts: n }, "the database works again; projection resumed");
          retrying = undefined;
        }
        return "applied";
      } catch (err) {
        if (err instanceof CheckpointMoved) return { err, attempts: n };
        // The database's fault, not the commits': past `maxAttempts` it is retried until it passes.
        const environmental = !isCommitsFault(err);
        if (n >= maxAttempts && !environmental) return { err, attempts: n };
        // Stopping: the checkpoint is where it was; the next start tries again, backoff and all.
        if (stopping()) {
          log.warn({ err, projection: projection.name, from: first, to: last }, "projection batch failed while stopping");
          return "stopping";
        }
        if (n < maxAttempts) {
          log.warn({ err, projection: projection.name, attempt: n, from: first, to: last }, "projection batch failed; retrying");
        } else if (retrying === undefined) {
          log.error(
            { err, projection: projection.name, attempt: n, from: first, to: last },
            "the database keeps failing; retrying at the checkpoint until it works again",
          );
        }
        if (n >= maxAttempts) retrying = `${describe(err)} (commits ${first}..${last}; ${n} attempts)`;
        await pause(retryDelay(n, maxRetryDelayMs), abort.signal);
        if (stopping()) return "stopping";
      }
    }
  };

  /** Stops in state `failed` for `err`, which is no commit's fault; returns false. */
  const failWith = (err: unknown, commits: readonly StoredCommit[]): false => {
    state = "failed";
    error = `${describe(err)} (commits ${commits[0]?.seq}..${commits[commits.length - 1]?.seq})`;
    log.error({ err, projection: projection.name, from: commits[0]?.seq }, "projection failed; stopped at its checkpoint");
    return false;
  };

  /** Parks `commit` as the policy says; true when the projector goes on past it. */
  const park = (commit: StoredCommit, err: unknown, attempts: number): boolean => {
    const why = describe(err);
    try {
      parkCommit(commit, why, attempts, skipPoison ? commit.seq : position, position);
    } catch (parkErr) {
      return failWith(parkErr, [commit]);
    }
    parked = parking.count();
    log.error(
      { err, projection: projection.name, position: commit.seq, subject: commit.subject, attempts, onPoison: skipPoison ? "skip" : "stop" },
      skipPoison ? "poison commit parked and skipped" : "poison commit parked; projector stopped before it",
    );
    if (!skipPoison) {
      state = "stopped-on-poison";
      error = `commit ${commit.seq} on ${commit.subject} is parked: ${why}`;
      return false;
    }
    position = commit.seq;
    parkedAhead = parking.countAfter(position);
    advanced();
    group.refreshHead();
    return true;
  };

  /** Applies `commits`, all after the checkpoint; false when the projector must stop (its state says why). */
  const flushAfter = async (commits: readonly StoredCommit[]): Promise<boolean> => {
    const only = commits[0];
    if (only === undefined) return true;
    const tried = await attempt(commits);
    if (tried === "applied") return true;
    if (tried === "stopping") return false;
    if (!isCommitsFault(tried.err)) return failWith(tried.err, commits);
    if (commits.length === 1) return park(only, tried.err, tried.attempts);
    log.warn(
      { err: tried.err, projection: projection.name, from: only.seq, to: commits[commits.length - 1]?.seq },
      "projection batch keeps failing; applying its commits one at a time to find the one at fault",
    );
    for (const [i, commit] of commits.entries()) {
      const alone = await attempt([commit]);
      if (alone === "applied") continue;
      if (alone === "stopping") return false;
      if (!isCommitsFault(alone.err)) return failWith(alone.err, [commit]);
      if (!park(commit, alone.err, alone.attempts)) return false;
      // Past the poison commit: the rest goes back to one transaction.
      return flushAfter(commits.slice(i + 1));
    }
    return true; // it failed as a batch only: every commit has now been applied on its own
  };

  const projector: Projector = {
    start() {
      if (state === "running") return;
      state = "running";
      error = undefined;
      retrying = undefined;
      readFailure = undefined;
      progress.advanced();
      abort = new AbortController();
      parked = parking.count();
      parkedAhead = parking.countAfter(position);
      rate.reset();
      group.started(member);
    },

    async stop() {
      abort.abort();
      await group.stopping();
      if (state === "running") state = "stopped";
    },

    status: () => {
      const head = group.head();
      const now = statusOf(head);
      return {
        projection: projection.name,
        state: now.state,
        position,
        head,
        lag: Math.max(0, head - position),
        commitsPerSecond: rate.perSecond(),
        commitsApplied,
        batches,
        parked,
        ...(now.error === undefined ? {} : { error: now.error }),
      };
    },

    waitFor: (target, timeoutMs) => waiters.waitFor(target, timeoutMs),
  };

  /** The state operators see: a running projector retrying or stalled says so. */
  const statusOf = (head: number): { state: ProjectorStatus["state"]; error: string | undefined } => {
    if (state !== "running") return { state, error };
    if (retrying !== undefined) return { state: "retrying", error: retrying };
    if (readFailure !== undefined) return { state: "retrying", error: `the stream cannot be read: ${readFailure}` };
    const stalled = progress.stalled(head, position);
    return stalled === undefined ? { state, error: undefined } : { state: "stalled", error: stalled };
  };

  const member: Member = {
    name: projection.name,
    projector,
    state: () => state,
    position: () => position,
    wanted: () => state === "running" && !stopping(),
    applyInTransaction: (commits) => applyCommits(commits, position),
    applied,
    flush: (commits) => flushAfter(commits[0] !== undefined && commits[0].seq > position ? commits : commits.filter((c) => c.seq > position)),
    failed(err) {
      if (state !== "running") return;
      state = "failed";
      error = describe(err);
    },
    readFailed(err) {
      readFailure = err === undefined ? undefined : describe(err);
    },
    sawHead(head) {
      progress.sawHead(head, position);
    },
    finished() {
      if (state === "running") state = "stopped";
    },
  };
  return member;
}

/** Another projector has written the same read model: this one stops rather than apply commits twice. */
export class CheckpointMoved extends Error {
  readonly kind = "checkpoint-moved";
  constructor(projection: string, expected: number) {
    super(`the checkpoint of ${projection} is no longer at ${expected}: another projector writes this read model`);
    this.name = "CheckpointMoved";
  }
}

// SQLite's primary result codes that say the database or its host is failing, whatever the commit: parking a
// commit for them would skip good commits (a full disk must stop the projector, not empty the read model).
const environmentalCodes = new Set([
  "SQLITE_BUSY",
  "SQLITE_LOCKED",
  "SQLITE_NOMEM",
  "SQLITE_READONLY",
  "SQLITE_INTERRUPT",
  "SQLITE_IOERR",
  "SQLITE_CORRUPT",
  "SQLITE_FULL",
  "SQLITE_CANTOPEN",
  "SQLITE_PROTOCOL",
  "SQLITE_NOLFS",
  "SQLITE_AUTH",
  "SQLITE_NOTADB",
  "SQLITE_PERM",
]);

/** True when `err` may be the commit's fault: anything but a moved checkpoint or a failing database. */
function isCommitsFault(err: unknown): boolean {
  if (err instanceof CheckpointMoved) return false;
  if (!(err instanceof Database.SqliteError)) return true;
  // Extended codes (SQLITE_IOERR_WRITE, SQLITE_BUSY_SNAPSHOT…) start with their primary code.
  return !environmentalCodes.has(/^SQLITE_[A-Z]+/.exec(err.code)?.[0] ?? "");
}

/** The pause before attempt `n + 1`: 100 ms doubling, at most `maxMs`. */
function retryDelay(n: number, maxMs: number): number {
  return Math.min(maxMs, 50 * 2 ** Math.min(n, 20));
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Commits per second over a window of whole clock seconds; see {@link ProjectorStatus.commitsPerSecond}. */
function createRate(windowSeconds = 5): { add(n: number): void; perSecond(): number; reset(): void } {
  const slots = windowSeconds + 1; // the window's whole seconds and the current one
  const second = new Array<number>(slots).fill(-1);
  const count = new Array<number>(slots).fill(0);
  let since = Date.now();
  return {
    add(n) {
      const now = Math.floor(Date.now() / 1000);
      const slot = now % slots;
      if (second[slot] !== now) {
        second[slot] = now;
        count[slot] = 0;
      }
      count[slot] = (count[slot] ?? 0) + n;
    },
    perSecond() {
      const nowMs = Date.now();
      const now = Math.floor(nowMs / 1000);
      let sum = 0;
      for (let i = 0; i < slots; i++) if ((second[i] ?? -1) >= now - windowSeconds) sum += count[i] ?? 0;
      const from = Math.max((now - windowSeconds) * 1000, since);
      return Math.round((sum * 10_000) / Math.max(1000, nowMs - from)) / 10;
    },
    reset() {
      second.fill(-1);
      count.fill(0);
      since = Date.now();
    },
  };
}
