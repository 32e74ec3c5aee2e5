import { hash } from "node:crypto";
import { LRUCache } from "lru-cache";
import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { DomainError } from "../domain/errors.js";
import type { EventStore, StoredCommit, StoredRecord } from "../streams/event-store.js";
import { ConcurrencyError, RecordExistsError, UnavailableError } from "../streams/errors.js";
import { unavailableOr } from "../streams/nats-errors.js";
import type { AggregateType } from "./aggregate-type.js";
import { decodeRecord, encodeRecord, type CommandRecord } from "./command-records.js";
import { CommandConflict, CommandIdReused, ExpectedVersionMismatch, ShuttingDown } from "./errors.js";
import { createKeyedQueue } from "./keyed-queue.js";
import { decodeState, encodeState } from "./snapshot-codec.js";

/** One command on its way through the pipeline. */
export interface CommandEnvelope<C> {
  readonly aggregateId: string;
  readonly command: C;
  /** The idempotency key (a UUID, validated by the caller). */
  readonly commandId: string;
  /** The version the caller's decision was based on (the aggregate's number of commits); omitted: any. */
  readonly expectedVersion?: number;
  readonly actor: string;
  readonly correlationId: string;
  readonly causationId: string;
  /**
   * What identifies the request: a repeat of the command id must come with the same type name and bytes.
   * Requests of different types can share their bytes, hence both.
   */
  readonly requestType: string;
  readonly request: Uint8Array;
}

/** What an accepted command answers; a repeat of the command id answers the same. */
export interface CommandOutcome<E> {
  readonly aggregateId: string;
  /** The aggregate's number of commits after the command. */
  readonly version: number;
  /** The stream sequence of the command's commit (of the aggregate's last commit when nothing changed). */
  readonly position: number;
  readonly events: readonly E[];
}

/**
 * A command that decides over several aggregates at once (one that moves something from one aggregate to others,
 * say) and commits to every aggregate it changes in one atomic batch, with its record.
 */
export interface Transaction {
  /** The idempotency key (a UUID, validated by the caller). */
  readonly commandId: string;
  readonly actor: string;
  readonly correlationId: string;
  readonly causationId: string;
  /** What identifies the request, as in {@link CommandEnvelope}. */
  readonly requestType: string;
  readonly request: Uint8Array;
  /** Every kind of aggregate it may change: a repeat reads its commits back through these. */
  readonly types: readonly AggregateType<never, unknown, unknown>[];
  /**
   * Decides through `unit`, which reads and changes the aggregates it names; throws a DomainError to refuse the
   * whole command. It may run more than once (after another writer moved an aggregate it changed), so it does
   * nothing but read and decide through `unit`.
   */
  decide(unit: UnitOfWork): Promise<void>;
}

/**
 * What a {@link Transaction} decides through: the aggregates as the transaction has changed them so far. Reads
 * may run concurrently (an aggregate is loaded once); decisions on one aggregate apply in the order they are made.
 */
export interface UnitOfWork {
  /** The aggregate's state with what this transaction decided on it so far. */
  state<C, E, S>(type: AggregateType<C, E, S>, aggregateId: string): Promise<S>;
  /**
   * Decides `command` against the aggregate's state with what this transaction decided on it so far, and keeps
   * the events for the transaction's commit of that aggregate. Throws the decider's refusal.
   */
  decide<C, E, S>(type: AggregateType<C, E, S>, aggregateId: string, command: C): Promise<E[]>;
}

/** One aggregate's commit in a transaction's answer. */
export interface AggregateCommit {
  /** The aggregate type's name. */
  readonly type: string;
  readonly aggregateId: string;
  readonly version: number;
  readonly position: number;
  /** The events, as the aggregate type decodes them. */
  readonly events: readonly unknown[];
}

/**
 * What an accepted transaction answers, the same on a repeat: its commits, in the order it first changed their
 * aggregates, which is their order in the stream.
 */
export interface TransactionOutcome {
  readonly commits: readonly AggregateCommit[];
}

/** Counters for operators and tests. */
export interface PipelineStats {
  /** Aggregate loads that missed the cache. */
  loads: number;
  /** Of those, loads that started from a snapshot. */
  snapshotLoads: number;
  /** Commits read by loads. */
  commitsRead: number;
  appends: number;
  /** Appends refused because another writer had moved the aggregate. */
  conflicts: number;
  snapshotsWritten: number;
  /** Repeated command ids answered from their record. */
  repeats: number;
}

/** Options of {@link createCommandPipeline}. */
export interface CommandPipelineOptions {
  readonly store: EventStore;
  /** The `foldline-snapshots` bucket. */
  readonly snapshotsBucket: KV;
  readonly log: Logger;
  /** Aggregates kept in memory (default 10 000; 0 disables the cache). */
  readonly cacheSize?: number;
  /** A snapshot is written once an aggregate has this many commits past its last one (default 100). */
  readonly snapshotEvery?: number;
  /**
   * A snapshot is also written after a command whose aggregate was loaded from the stream (not the cache) by
   * reading at least this many commits after its snapshot (default 3). Aggregates that keep being loaded cold
   * (a small cache, many servers sharing the load) thus keep their tails short, while a cached aggregate is
   * snapshotted only every `snapshotEvery` commits.
   */
  readonly snapshotAfterColdRead?: number;
  /** Attempts of a command whose append meets a concurrent writer, before it fails with CommandConflict (default 5). */
  readonly maxAttempts?: number;
  /**
   * Bound on a whole command, from {@link CommandPipeline.execute} to its answer, queueing behind the commands
   * of the same aggregate included (default 5 000 ms; NATS_TIMEOUT_MS in the servers). Past it the caller gets
   * UnavailableError; a command still queued then is never executed.
   */
  readonly commandTimeoutMs?: number;
}

/** The command pipeline: load, decide, append with the command's record, respond. */
export interface CommandPipeline {
  /**
   * Executes one command against its aggregate and answers the outcome. Commands on one aggregate run one at a
   * time in the order they were passed in; others run concurrently. It answers within `commandTimeoutMs`: a
   * command that is not done by then gets UnavailableError (one still running goes on, and may append; a repeat
   * with the same id finds out), and one still queued behind it is dropped without being run.
   *
   * A command's commit and its record (`cmd.<command id>`: the request's fingerprint and what it appended) are
   * stored as one atomic batch, on condition that the command id has no record yet: one round trip, and a crash
   * leaves both or neither. A repeat of the id, on any server and at any time, meets that record (its append is
   * refused, or it finds the record before it answers a refusal) and answers from it and the commit after it
   * what the first execution answered.
   *
   * Throws the decider's domain errors, ExpectedVersionMismatch, CommandIdReused (the id came with a different
   * request), CommandConflict (other writers kept winning), UnavailableError (NATS did not answer; the command
   * may have been appended, retry with the same id) and ShuttingDown after {@link close}. Nothing is written
   * when it throws anything but UnavailableError.
   */
  execute<C, E, S>(type: AggregateType<C, E, S>, envelope: CommandEnvelope<C>): Promise<CommandOutcome<E>>;
  /**
   * Executes a command over several aggregates: every aggregate it changes gets one commit, and those commits
   * and the command's record are stored as one atomic batch, each commit on condition that its aggregate has not
   * moved since the transaction read it, or nothing is. A conflict decides again on the new states, up to
   * `maxAttempts` times. Aggregates it only reads are not conditioned. Repeats, deadlines and errors are as for
   * {@link execute}; commands of one aggregate are not queued behind it (the conditions keep them apart).
   */
  transact(transaction: Transaction): Promise<TransactionOutcome>;
  /**
   * The state of an aggregate as of its last commit in the stream, read the way commands load it: the cached state
   * when it is that commit's, otherwise the snapshot and the commits after it. Queued behind the commands of the
   * aggregate running in this process. Throws UnavailableError when NATS does not answer.
   */
  currentState<C, E, S>(type: AggregateType<C, E, S>, aggregateId: string): Promise<S>;
  readonly stats: Readonly<PipelineStats>;
  /** Refuses new commands, then waits for those running and for snapshot writes. */
  close(): Promise<void>;
}

/** A command's aggregate while it runs: as loaded, and whether that came from the cache and is yet to be checked. */
interface CommandView {
  loaded: Loaded;
  fromCache: boolean;
}

/** An aggregate as loaded: its state, its number of commits and the sequence of its last commit. */
interface Loaded {
  readonly state: unknown;
  readonly version: number;
  readonly seq: number;
  /** The version of the latest snapshot known to exist. */
  readonly snapshotVersion: number;
  /** Commits read after the snapshot when the aggregate was loaded from the stream; 0 once cached. */
  readonly coldRead: number;
}

interface SnapshotBody {
  readonly version: number;
  readonly seq: number;
  readonly state: unknown;
}

/** Creates a command pipeline over an event store and the engine's buckets. */
export function createCommandPipeline(options: CommandPipelineOptions): CommandPipeline {
  const { store, log } = options;
  const cacheSize = options.cacheSize ?? 10_000;
  const snapshotEvery = options.snapshotEvery ?? 100;
  const snapshotAfterColdRead = options.snapshotAfterColdRead ?? 3;
  const maxAttempts = options.maxAttempts ?? 5;
  const commandTimeoutMs = options.commandTimeoutMs ?? 5_000;
  const deadlines = createDeadlines(commandTimeoutMs);
  const snapshots = options.snapshotsBucket;
  const cache = cacheSize > 0 ? new LRUCache<string, Loaded>({ max: cacheSize }) : undefined;
  const queue = createKeyedQueue();
  const inFlight = new Map<string, { fingerprint: string; outcome: Promise<unknown> }>();
  const background = new Set<Promise<void>>();
  const stats: PipelineStats = {
    loads: 0,
    snapshotLoads: 0,
    commitsRead: 0,
    appends: 0,
    conflicts: 0,
    snapshotsWritten: 0,
    repeats: 0,
  };
  let closing = false;

  const fold = <C, E, S>(type: AggregateType<C, E, S>, from: Loaded, commits: readonly StoredCommit[]): Loaded => {
    let { state, version, seq } = from;
    for (const commit of commits) {
      for (const record of commit.events) state = type.decider.evolve(state as S, type.decodeEvent(record));
      version = commit.metadata.aggregateVersion === 0 ? version + 1 : commit.metadata.aggregateVersion;
      seq = commit.seq;
    }
    return { state, version, seq, snapshotVersion: from.snapshotVersion, coldRead: commits.length };
  };

  async function load<C, E, S>(type: AggregateType<C, E, S>, subject: string): Promise<Loaded> {
    const cached = cache?.get(subject);
    if (cached !== undefined) return cached;
    stats.loads++;
    const key = snapshotKey(subject);
    let start: Loaded = { state: type.decider.initialState, version: 0, seq: 0, snapshotVersion: 0, coldRead: 0 };
    let entry, lastSeq;
    try {
      [entry, lastSeq] = await Promise.all([snapshots.get(key), store.lastSequence(subject)]);
    } catch (err) {
      throw unavailableOr(err, `a snapshot read of ${subject}`);
    }
    if (entry !== null && entry.operation === "PUT") {
      try {
        const body = decodeState(entry.value) as SnapshotBody;
        start = { state: body.state, version: body.version, seq: body.seq, snapshotVersion: body.version, coldRead: 0 };
        stats.snapshotLoads++;
      } catch (err) {
        // A snapshot is a cache of the stream: an unreadable one costs a full replay, never a wrong state.
        log.warn({ err, subject }, "snapshot unreadable; replaying the aggregate from its first commit");
      }
    }
    const commits = await store.readAggregate(subject, { afterSeq: start.seq, lastSeq });
    stats.commitsRead += commits.length;
    const loaded = fold(type, start, commits);
    cache?.set(subject, loaded);
    return loaded;
  }

  /** Writes a snapshot of `loaded` in the background when it is due; returns `loaded` as cached from now on. */
  function maybeSnapshot(subject: string, loaded: Loaded, coldRead: number): Loaded {
    if (loaded.version - loaded.snapshotVersion < snapshotEvery && coldRead < snapshotAfterColdRead) return loaded;
    const body: SnapshotBody = { version: loaded.version, seq: loaded.seq, state: loaded.state };
    const write = snapshots.put(snapshotKey(subject), encodeState(body)).then(
      () => {
        stats.snapshotsWritten++;
      },
      (err: unknown) => {
        log.warn({ err, subject, version: loaded.version }, "snapshot write failed; the next one will try again");
        const current = cache?.get(subject);
        if (current?.seq === loaded.seq) cache?.set(subject, { ...current, snapshotVersion: loaded.snapshotVersion });
      },
    );
    background.add(write);
    void write.finally(() => background.delete(write));
    return { ...loaded, snapshotVersion: loaded.version };
  }

  const outcomeOf = <C, E, S>(type: AggregateType<C, E, S>, aggregateId: string, commit: StoredCommit): CommandOutcome<E> => ({
    aggregateId,
    version: commit.metadata.aggregateVersion,
    position: commit.seq,
    events: commit.events.map((record) => type.decodeEvent(record)),
  });

  /**
   * What the first execution of a command id answered, from its record and the commit after it; throws
   * CommandIdReused when the record is another request's.
   */
  async function answerRepeat<C, E, S>(
    type: AggregateType<C, E, S>,
    envelope: CommandEnvelope<C>,
    fingerprint: string,
    stored: StoredRecord,
  ): Promise<CommandOutcome<E>> {
    const { record, commits } = await recorded(envelope.commandId, fingerprint, stored);
    const [commit] = commits;
    if (commit === undefined) {
      return { aggregateId: envelope.aggregateId, version: record.version, position: record.position, events: [] };
    }
    return outcomeOf(type, envelope.aggregateId, commit);
  }

  /**
   * A repeat's record and the commits its batch stored after it (consecutive, the record first); throws
   * CommandIdReused when the record is another request's.
   */
  async function recorded(
    commandId: string,
    fingerprint: string,
    stored: StoredRecord,
  ): Promise<{ readonly record: CommandRecord; readonly commits: readonly StoredCommit[] }> {
    const record = decodeRecord(stored.data);
    if (record.fingerprint !== fingerprint) throw new CommandIdReused(commandId);
    stats.repeats++;
    const seqs = Array.from({ length: record.commits }, (_, i) => stored.seq + 1 + i);
    const commits = await Promise.all(seqs.map((seq) => store.readCommit(seq)));
    return {
      record,
      commits: commits.map((commit, i) => {
        if (commit?.metadata.commandId !== commandId) {
          throw new Error(`commit ${i + 1} of command ${commandId} is not where its record at ${stored.seq} says`);
        }
        return commit;
      }),
    };
  }

  /**
   * Before a command is refused, or answered that nothing changes: was the id executed already (the state it
   * met may be its own doing)? Then that first answer is the answer.
   */
  async function earlierOutcome<C, E, S>(
    type: AggregateType<C, E, S>,
    envelope: CommandEnvelope<C>,
    fingerprint: string,
  ): Promise<CommandOutcome<E> | undefined> {
    const stored = await store.readRecord(envelope.commandId);
    return stored === undefined ? undefined : answerRepeat(type, envelope, fingerprint, stored);
  }

  /** Answers from the record that made an append of `envelope` fail: the command id was executed already. */
  async function recordedOutcome<C, E, S>(
    type: AggregateType<C, E, S>,
    envelope: CommandEnvelope<C>,
    fingerprint: string,
  ): Promise<CommandOutcome<E>> {
    const outcome = await earlierOutcome(type, envelope, fingerprint);
    // A record is never deleted (deny_delete): the one that refused the append is there.
    if (outcome === undefined) throw new UnavailableError(`the record of command ${envelope.commandId} could not be read back`);
    return outcome;
  }

  /** Caches `loaded` unless the cache holds a later commit: a transaction and a command may finish out of order. */
  const remember = (subject: string, loaded: Loaded): void => {
    const cached = cache?.peek(subject);
    if (cached === undefined || cached.seq <= loaded.seq) cache?.set(subject, loaded);
  };

  /** The answer of a transaction from its record and the commits after it; throws CommandIdReused for another request's. */
  async function answerTransaction(
    transaction: Transaction,
    fingerprint: string,
    stored: StoredRecord,
  ): Promise<TransactionOutcome> {
    const { commits } = await recorded(transaction.commandId, fingerprint, stored);
    const types = new Map(transaction.types.map((t) => [t.name, t]));
    return {
      commits: commits.map((commit) => {
        // `ev.<type>.<aggregate id>`; an aggregate id may hold no dot, a type name neither.
        const [, name = "", aggregateId = ""] = commit.subject.split(".");
        const type = types.get(name);
        if (type === undefined) throw new Error(`command ${transaction.commandId} changed ${commit.subject}, of no type it names`);
        return { ...outcomeOf(type, aggregateId, commit), type: name };
      }),
    };
  }

  /** One aggregate as a transaction has it: as loaded, and with what the transaction decided on it so far. */
  interface Touched {
    readonly type: AggregateType<unknown, unknown, unknown>;
    readonly aggregateId: string;
    readonly loaded: Loaded;
    /** Whether `loaded` came from the cache and has not been checked against the stream. */
    unchecked: boolean;
    state: unknown;
    readonly events: unknown[];
  }

  /** Drops the cached states among `touched` that the stream has moved past; true when there was one. */
  async function movedPastCache(touched: ReadonlyMap<string, Touched>): Promise<boolean> {
    const unchecked = [...touched].filter(([, t]) => t.unchecked);
    let lasts;
    try {
      lasts = await Promise.all(unchecked.map(([subject]) => store.lastSequence(subject)));
    } catch (err) {
      throw unavailableOr(err, "a read of the last commits of a transaction's aggregates");
    }
    let moved = false;
    unchecked.forEach(([subject, t], i) => {
      t.unchecked = false;
      if (lasts[i] === t.loaded.seq) return;
      cache?.delete(subject);
      moved = true;
    });
    return moved;
  }

  async function runTransaction(transaction: Transaction, fingerprint: string): Promise<TransactionOutcome> {
    const { commandId, actor, correlationId, causationId } = transaction;
    const earlier = async (): Promise<TransactionOutcome | undefined> => {
      const stored = await store.readRecord(commandId);
      return stored === undefined ? undefined : answerTransaction(transaction, fingerprint, stored);
    };
    /** One decision and append: the outcome, or why to go again (a cached state was stale, or a conflict). */
    const attemptOnce = async (): Promise<
      { readonly outcome: TransactionOutcome } | { readonly conflict?: ConcurrencyError; readonly changed: readonly string[] }
    > => {
      const touched = new Map<string, Touched>();
      /** The aggregates changed, in the order first changed: the order of their commits in the batch. */
      const changed: [string, Touched][] = [];
      // Loads may run concurrently (a decision reading several aggregates at once): each is loaded once.
      const loading = new Map<string, Promise<Touched>>();
      const touch = (type: AggregateType<unknown, unknown, unknown>, aggregateId: string): Promise<Touched> => {
        const subject = `ev.${type.name}.${aggregateId}`;
        let t = loading.get(subject);
        if (t === undefined) {
          const unchecked = cache?.has(subject) === true;
          t = load(type, subject).then((loaded) => {
            const one = { type, aggregateId, loaded, unchecked, state: loaded.state, events: [] };
            touched.set(subject, one);
            return one;
          });
          loading.set(subject, t);
        }
        return t;
      };
      const unit: UnitOfWork = {
        async state<C, E, S>(type: AggregateType<C, E, S>, aggregateId: string): Promise<S> {
          return (await touch(type, aggregateId)).state as S;
        },
        async decide<C, E, S>(type: AggregateType<C, E, S>, aggregateId: string, command: C): Promise<E[]> {
          const t = await touch(type, aggregateId);
          const events = type.decider.decide(command, t.state as S);
          if (events.length > 0 && t.events.length === 0) changed.push([`ev.${type.name}.${aggregateId}`, t]);
          t.state = events.reduce((st, e) => type.decider.evolve(st, e), t.state as S);
          t.events.push(...events);
          return events;
        },
      };
      // Refusals, and the answer that nothing changes, are checked against the stream as for one aggregate.
      try {
        await transaction.decide(unit);
      } catch (err) {
        if (!(err instanceof DomainError)) throw err;
        if (await movedPastCache(touched)) return { changed: [] };
        const outcome = await earlier();
        if (outcome !== undefined) return { outcome };
        throw err;
      }
      if (changed.length === 0 && (await movedPastCache(touched))) return { changed: [] };
      let appended;
      try {
        appended = await store.appendBatch(
          changed.map(([subject, t]) => ({
            subject,
            events: t.events.map((e) => t.type.encodeEvent(e)),
            expectedSeq: t.loaded.seq,
            aggregateVersion: t.loaded.version + 1,
          })),
          {
            commandId,
            actor,
            correlationId,
            causationId,
            record: encodeRecord({ fingerprint, commits: changed.length, version: 0, position: 0 }),
          },
        );
      } catch (err) {
        if (!(err instanceof RecordExistsError || err instanceof ConcurrencyError)) throw err;
        for (const subject of touched.keys()) cache?.delete(subject);
        if (err instanceof RecordExistsError) {
          const outcome = await earlier();
          if (outcome === undefined) throw new UnavailableError(`the record of command ${commandId} could not be read back`);
          return { outcome };
        }
        return { conflict: err, changed: changed.map(([subject]) => subject) };
      }
      if (changed.length > 0) stats.appends++;
      const commits = changed.map(([subject, t], i) => {
        const seq = appended.seqs[i] ?? 0;
        const version = t.loaded.version + 1;
        const next = { state: t.state, version, seq, snapshotVersion: t.loaded.snapshotVersion, coldRead: 0 };
        remember(subject, maybeSnapshot(subject, next, t.loaded.coldRead));
        return { type: t.type.name, aggregateId: t.aggregateId, version, position: seq, events: t.events };
      });
      return { outcome: { commits } };
    };

    // After a conflict, the next attempt waits for the commands and transactions of this process on every
    // aggregate the last one changed (taken in subject order, so that two transactions never wait for each
    // other): concurrent transactions that all change one aggregate then take turns instead of failing each other's conditions.
    let held: readonly string[] = [];
    for (let attempt = 1; ; attempt++) {
      const result = await [...held].sort().reduceRight<() => ReturnType<typeof attemptOnce>>(
        (inner, subject) => () => queue.run(subject, inner),
        attemptOnce,
      )();
      if ("outcome" in result) return result.outcome;
      if (result.conflict === undefined) continue;
      stats.conflicts++;
      if (attempt >= maxAttempts) throw new CommandConflict(result.conflict.subject, attempt);
      held = result.changed;
    }
  }

  // `refreshed` and `refuse` belong to the pipeline rather than being closures made by each command: the tsx
  // loader names every function it sees created (`__name`, an Object.defineProperty), which for the closures of
  // `run` and `appendBatch` came to about 5 µs of the 230 µs of CPU a streamed command costs the API server
  // (measured with a CPU profile of the bench).

  /**
   * Reloads a command's aggregate that came from the cache when the stream has moved past it; true when it did.
   * The stream is asked once per command.
   */
  async function refreshed<C, E, S>(type: AggregateType<C, E, S>, subject: string, view: CommandView): Promise<boolean> {
    if (!view.fromCache) return false;
    view.fromCache = false;
    let last;
    try {
      last = await store.lastSequence(subject);
    } catch (err) {
      throw unavailableOr(err, `a read of the last commit of ${subject}`);
    }
    if (last === view.loaded.seq) return false;
    cache?.delete(subject);
    view.loaded = await load(type, subject);
    return true;
  }

  /** Refuses the command with `err`, unless the command id was executed already: then its answer. */
  async function refuse<C, E, S>(
    type: AggregateType<C, E, S>,
    envelope: CommandEnvelope<C>,
    fingerprint: string,
    err: unknown,
  ): Promise<CommandOutcome<E>> {
    const earlier = await earlierOutcome(type, envelope, fingerprint);
    if (earlier !== undefined) return earlier;
    throw err;
  }

  async function run<C, E, S>(
    type: AggregateType<C, E, S>,
    envelope: CommandEnvelope<C>,
    subject: string,
    fingerprint: string,
  ): Promise<CommandOutcome<E>> {
    const { decider } = type;
    // A cached state may be behind another process's writes (another server, a process manager): before it
    // refuses a command, or answers that nothing changes, the stream is asked whether the aggregate moved.
    // A cached aggregate is taken without a call to `load`: an await fewer on the hot path.
    const cached = cache?.get(subject);
    const view: CommandView = { loaded: cached ?? (await load(type, subject)), fromCache: cached !== undefined };

    for (let attempt = 1; ; attempt++) {
      if (envelope.expectedVersion !== undefined && envelope.expectedVersion !== view.loaded.version) {
        if (await refreshed(type, subject, view)) continue;
        return refuse(type, envelope, fingerprint, new ExpectedVersionMismatch(subject, envelope.expectedVersion, view.loaded.version));
      }
      let events: E[];
      try {
        events = decider.decide(envelope.command, view.loaded.state as S);
      } catch (err) {
        if (!(err instanceof DomainError)) throw err;
        if (await refreshed(type, subject, view)) continue;
        return refuse(type, envelope, fingerprint, err);
      }
      if (events.length === 0 && (await refreshed(type, subject, view))) continue;

      const record: CommandRecord =
        events.length === 0
          ? { fingerprint, commits: 0, version: view.loaded.version, position: view.loaded.seq }
          : { fingerprint, commits: 1, version: 0, position: 0 };
      const version = view.loaded.version + 1;
      let appended;
      try {
        appended = await store.appendBatch(
          events.length === 0
            ? []
            : [{ subject, events: events.map((e) => type.encodeEvent(e)), expectedSeq: view.loaded.seq, aggregateVersion: version }],
          {
            commandId: envelope.commandId,
            actor: envelope.actor,
            correlationId: envelope.correlationId,
            causationId: envelope.causationId,
            record: encodeRecord(record),
          },
        );
      } catch (err) {
        if (err instanceof RecordExistsError) {
          // Executed before (on this server or another): its first answer, whatever the state is now.
          cache?.delete(subject);
          return recordedOutcome(type, envelope, fingerprint);
        }
        if (!(err instanceof ConcurrencyError)) throw err;
        stats.conflicts++;
        cache?.delete(subject);
        view.loaded = await load(type, subject);
        // The append expected the caller's version: the aggregate has moved past it, whatever the attempt.
        if (envelope.expectedVersion !== undefined) {
          return refuse(type, envelope, fingerprint, new ExpectedVersionMismatch(subject, envelope.expectedVersion, view.loaded.version));
        }
        if (attempt >= maxAttempts) throw new CommandConflict(subject, attempt);
        continue;
      }
      if (events.length === 0) {
        return { aggregateId: envelope.aggregateId, version: view.loaded.version, position: view.loaded.seq, events: [] };
      }
      stats.appends++;
      const seq = appended.seqs[0] ?? 0;
      const state = events.reduce<S>((st, e) => decider.evolve(st, e), view.loaded.state as S);
      const next = maybeSnapshot(
        subject,
        { state, version, seq, snapshotVersion: view.loaded.snapshotVersion, coldRead: 0 },
        view.loaded.coldRead,
      );
      remember(subject, next);
      return { aggregateId: envelope.aggregateId, version, position: seq, events };
    }
  }

  /**
   * Starts a command unless one with its id runs in this process already (then its outcome is the answer, when
   * the request is the same), and answers it within the command timeout.
   */
  function once<T>(commandId: string, fingerprint: string, what: string, start: (deadline: number) => Promise<T>): Promise<T> {
    if (closing) return Promise.reject(new ShuttingDown());
    const deadline = Date.now() + commandTimeoutMs;
    const running = inFlight.get(commandId);
    if (running !== undefined) {
      if (running.fingerprint !== fingerprint) return Promise.reject(new CommandIdReused(commandId));
      stats.repeats++;
      return deadlines.within(running.outcome as Promise<T>, deadline, what);
    }
    const outcome = start(deadline);
    inFlight.set(commandId, { fingerprint, outcome });
    void outcome.then(
      () => inFlight.delete(commandId),
      () => inFlight.delete(commandId),
    );
    return deadlines.within(outcome, deadline, what);
  }

  return {
    execute<C, E, S>(type: AggregateType<C, E, S>, envelope: CommandEnvelope<C>): Promise<CommandOutcome<E>> {
      const subject = `ev.${type.name}.${envelope.aggregateId}`;
      const fingerprint = fingerprintOf(envelope.requestType, envelope.request);
      return once(envelope.commandId, fingerprint, `the command on ${subject}`, (deadline) =>
        queue.run(subject, () =>
          Date.now() < deadline ? run(type, envelope, subject, fingerprint) : Promise.reject(notAnswered(`the command on ${subject}`)),
        ),
      );
    },

    transact(transaction: Transaction): Promise<TransactionOutcome> {
      const fingerprint = fingerprintOf(transaction.requestType, transaction.request);
      return once(transaction.commandId, fingerprint, `command ${transaction.commandId}`, () =>
        runTransaction(transaction, fingerprint),
      );
    },

    currentState<C, E, S>(type: AggregateType<C, E, S>, aggregateId: string): Promise<S> {
      const subject = `ev.${type.name}.${aggregateId}`;
      return queue.run(subject, async () => {
        let last;
        try {
          last = await store.lastSequence(subject);
        } catch (err) {
          throw unavailableOr(err, `a read of the last commit of ${subject}`);
        }
        // Another process may have moved the aggregate past the cached state.
        if (cache?.peek(subject)?.seq !== last) cache?.delete(subject);
        return (await load(type, subject)).state as S;
      });
    },

    stats,

    async close() {
      closing = true;
      await Promise.allSettled([...inFlight.values()].map((f) => f.outcome));
      await Promise.allSettled([...background]);
    },
  };
}

/** The error of a command that was not done by its deadline; `what` names it ("the command on ev.order.o1"). */
function notAnswered(what: string): UnavailableError {
  return new UnavailableError(`NATS did not answer in time for ${what}; retry it with the same command id`);
}

/** Callers waiting for an outcome, each until its deadline. */
interface Deadlines {
  /** Settles as `outcome` does, or rejects with UnavailableError at `deadline` (epoch ms, within a tick). */
  within<T>(outcome: Promise<T>, deadline: number, what: string): Promise<T>;
}

/**
 * Deadlines kept by one coarse timer (a tick of a tenth of `timeoutMs`, at least 10 ms, running only while a
 * caller waits) rather than a timer per command: measured, a timer per command cost a twentieth of the streaming
 * throughput.
 */
function createDeadlines(timeoutMs: number): Deadlines {
  const waiting = new Set<{ readonly deadline: number; readonly what: string; readonly reject: (err: Error) => void }>();
  const tickMs = Math.max(10, Math.floor(timeoutMs / 10));
  let sweeper: NodeJS.Timeout | undefined;
  const sweep = (): void => {
    const now = Date.now();
    for (const w of waiting) {
      if (w.deadline > now) continue;
      waiting.delete(w);
      w.reject(notAnswered(w.what));
    }
    if (waiting.size === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };
  return {
    within(outcome, deadline, what) {
      return new Promise((resolve, reject) => {
        const w = { deadline, what, reject };
        waiting.add(w);
        sweeper ??= setInterval(sweep, tickMs).unref();
        outcome.then(
          (value) => {
            waiting.delete(w);
            resolve(value);
          },
          (err: unknown) => {
            waiting.delete(w);
            reject(err instanceof Error ? err : new Error(String(err)));
          },
        );
      });
    },
  };
}

/**
 * What identifies a request: SHA-256 of its type name, a NUL and its bytes, in base64url. One call of
 * `crypto.hash` over the three joined gives the digest a Hash object fed the three gave (records stored before
 * still match) with one native call instead of five: measured alone, 0.8 µs against 2 µs; in a CPU profile of
 * the unary bench the Hash object's calls were about 5% of what a command costs over a no-op RPC.
 */
function fingerprintOf(requestType: string, request: Uint8Array): string {
  return hash("sha256", Buffer.concat([Buffer.from(`${requestType}\0`), request]), "base64url");
}

/** Snapshot key of an aggregate subject: `ev.<type>.<id>` → `<type>.<id>`. */
function snapshotKey(subject: string): string {
  return subject.slice(3);
}
