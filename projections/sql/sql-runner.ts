import { fork, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { ReadModelBehind, ReadModelUnavailable } from "../errors.js";
import { slowestProjection, type QueryFailure, type QueryReply, type SqlValue } from "./run-query.js";
import { SqlRefused, SqlTimeout } from "./sql-errors.js";
import { workerReady, type WorkerMessage, type WorkerRequest } from "./worker-protocol.js";

export type { SqlValue } from "./run-query.js";

/** Options of {@link createSqlRunner}. */
export interface SqlRunnerOptions {
  /** The read-model file. It need not exist yet: each query opens it, read-only. */
  readonly file: string;
  /** Worker processes at most, that is statements running at once (default 2); further queries wait their turn. */
  readonly workers?: number;
  /** Polling interval of the `minPosition` wait (default 5 ms). */
  readonly pollMs?: number;
  /**
   * Start worker processes only when a query needs one, rather than all of them now (default false). Saves
   * processes where queries are rare (tests starting the whole app), at the price of the first queries spending
   * a few hundred ms of their time cap on a worker loading.
   */
  readonly lazy?: boolean;
}

/** Limits of one {@link SqlRunner.run}. */
export interface SqlRunOptions {
  /** Rows returned at most, 1 or more. */
  readonly maxRows: number;
  /**
   * The most the run may take, in ms, 1 or more: the `minPosition` wait, waiting for a free worker and the
   * statement itself. A statement still running then is stopped (its worker process is killed).
   */
  readonly timeoutMs: number;
  /** Wait first until every projection's checkpoint reaches this stream sequence (0 or omitted: do not wait). */
  readonly minPosition?: number;
  /** Aborting it stops the run as the time cap would, and rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** A statement's rows. */
export interface SqlResult {
  /** Column names, in order; a name may repeat. */
  readonly columns: string[];
  /** At most `maxRows` rows, one value per column: integers as bigint, reals as number, blobs as Uint8Array. */
  readonly rows: SqlValue[][];
  /** The statement had more rows than `maxRows`. */
  readonly truncated: boolean;
  /** The lowest projection checkpoint in the read transaction the rows came from (0: no checkpoint yet). */
  readonly position: number;
}

/** Runs analysts' SQL over the read-model file, read-only, capped in rows and time. */
export interface SqlRunner {
  /**
   * Runs one statement that only reads and returns rows. Rejects with SqlRefused when the statement is not
   * allowed or SQLite rejects it (see `runQuery`), SqlTimeout when it runs out of time, ReadModelBehind when the
   * `minPosition` wait does, ReadModelUnavailable when the file cannot be opened or read, the signal's reason
   * when aborted, and an Error when a worker process fails (say, it cannot start).
   */
  run(sql: string, options: SqlRunOptions): Promise<SqlResult>;
  /**
   * Resolves once a worker process is up (the runner starts them when created; one takes a few hundred ms to load
   * under tsx, time a run would otherwise spend from its cap). Rejects when none can start.
   */
  ready(): Promise<void>;
  /** Kills the worker processes, running statements included; runs waiting for a worker reject. */
  close(): Promise<void>;
}

interface WorkerProcess {
  readonly child: ChildProcess;
  /** Resolves once the worker has loaded; rejects when it ends before that. */
  readonly ready: Promise<void>;
  isReady: boolean;
  /** Exited, failed or killed: never to be used again. */
  gone: boolean;
  /** Settles the request under way. */
  pending: ((reply: QueryReply | Error) => void) | undefined;
  /** Resolves when the process has ended. */
  readonly ended: Promise<void>;
}

interface Waiter {
  readonly take: (worker: WorkerProcess) => void;
  readonly fail: (err: Error) => void;
}

// The worker process runs this module's sibling: the TypeScript source under tsx (as in `npm start` and vitest),
// compiled JavaScript otherwise.
const fromSource = import.meta.url.endsWith(".ts");
const workerFile = fileURLToPath(new URL(fromSource ? "./sql-worker.ts" : "./sql-worker.js", import.meta.url));
// Resolved from here rather than by name, so that it does not depend on the current directory.
const workerExecArgv = fromSource ? ["--import", pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href] : [];
// A worker outlives its time cap by this much at most, should this process crash and leave it running.
const orphanGraceMs = 1_000;

/**
 * Creates a runner and starts its `workers` worker processes (unless `lazy`). Each statement runs in one of
 * them (they are reused) on a read-only connection of its own, opened for that statement; a statement that
 * outlives its time cap is stopped by killing its process (SIGKILL), and a replacement starts at once. Worker
 * threads would not do: nothing stops a thread inside a SQLite call, not even process exit. Idle workers do not
 * keep this process alive, and a worker ends when this process does (at the latest 1 s past the cap of the
 * statement it runs).
 */
export function createSqlRunner(options: SqlRunnerOptions): SqlRunner {
  const size = options.workers ?? 2;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`workers must be a whole number of 1 or more, got ${size}`);
  const pollMs = options.pollMs ?? 5;
  const workers = new Set<WorkerProcess>();
  const idle: WorkerProcess[] = [];
  const waiters: Waiter[] = [];
  let closed = false;

  // A worker keeps this process alive only while it loads or runs a statement.
  const hold = (worker: WorkerProcess, held: boolean): void => {
    if (held) {
      worker.child.ref();
      worker.child.channel?.ref();
    } else {
      worker.child.unref();
      worker.child.channel?.unref();
    }
  };

  const spawn = (): WorkerProcess => {
    const child = fork(workerFile, [], {
      execArgv: workerExecArgv,
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    let loaded!: () => void;
    let failedToLoad!: (err: Error) => void;
    let ended!: () => void;
    const worker: WorkerProcess = {
      child,
      ready: new Promise<void>((resolve, reject) => {
        loaded = resolve;
        failedToLoad = reject;
      }),
      isReady: false,
      gone: false,
      pending: undefined,
      ended: new Promise<void>((resolve) => {
        ended = resolve;
      }),
    };
    // Nobody need be waiting on it (the warm worker of a new runner).
    worker.ready.catch(() => undefined);
    workers.add(worker);
    hold(worker, true);

    child.on("message", (message: WorkerMessage) => {
      if (message === workerReady) {
        worker.isReady = true;
        loaded();
        release(worker);
      } else {
        const settle = worker.pending;
        worker.pending = undefined;
        settle?.(message);
      }
    });
    const end = (why: string): void => {
      ended();
      if (worker.gone && !workers.has(worker)) return;
      worker.gone = true;
      workers.delete(worker);
      const at = idle.indexOf(worker);
      if (at !== -1) idle.splice(at, 1);
      const settle = worker.pending;
      worker.pending = undefined;
      settle?.(new Error(`the SQL worker process ended while running the statement: ${why}`));
      if (!worker.isReady) {
        const err = new Error(`the SQL worker process (${workerFile}) ended before it was ready: ${why}`);
        failedToLoad(err);
        // Nothing else would serve them: starting another would most likely fail the same way.
        if (workers.size === 0) for (const waiter of waiters.splice(0)) waiter.fail(err);
      } else if (!closed) {
        // Killed for its time cap, or crashed: keep the pool warm.
        spawn();
      }
    };
    child.once("exit", (code, signal) => {
      end(signal === null ? `exit code ${code ?? "unknown"}` : `signal ${signal}`);
    });
    child.once("error", (err) => {
      // Failing to spawn or to signal it: either way it is of no more use.
      worker.gone = true;
      child.kill("SIGKILL");
      end(err.message);
    });
    return worker;
  };

  const kill = (worker: WorkerProcess): void => {
    worker.gone = true;
    // Held until it has exited, so that close() can wait for it.
    hold(worker, true);
    worker.child.kill("SIGKILL");
  };

  /** Hands a free worker to the first waiting run, or lets it idle. */
  const release = (worker: WorkerProcess): void => {
    if (worker.gone) return;
    const waiter = waiters.shift();
    if (waiter !== undefined) {
      waiter.take(worker);
      return;
    }
    idle.push(worker);
    hold(worker, false);
  };

  const acquire = (deadline: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<WorkerProcess> => {
    const free = idle.pop();
    if (free !== undefined) {
      hold(free, true);
      return Promise.resolve(free);
    }
    if (workers.size < size) spawn();
    return new Promise<WorkerProcess>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        const at = waiters.indexOf(waiter);
        if (at !== -1) waiters.splice(at, 1);
      };
      const waiter: Waiter = {
        take: (worker) => {
          done();
          hold(worker, true);
          resolve(worker);
        },
        fail: (err) => {
          done();
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        const loading = [...workers].some((w) => !w.isReady);
        waiter.fail(
          new SqlTimeout(
            loading
              ? `no SQL worker was ready within the time cap of ${timeoutMs} ms: a worker process takes a few hundred ms to start`
              : `no SQL worker became free within the time cap of ${timeoutMs} ms: ${running(workers.size)}`,
          ),
        );
      }, Math.max(0, deadline - Date.now()));
      const onAbort = (): void => {
        waiter.fail(abortReason(signal));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      waiters.push(waiter);
    });
  };

  /** Sends the request and waits for the reply, killing the worker when the deadline or the signal comes first. */
  const ask = (worker: WorkerProcess, request: WorkerRequest, deadline: number, timeoutMs: number, signal: AbortSignal | undefined) =>
    new Promise<QueryReply>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        worker.pending = undefined;
      };
      const timer = setTimeout(() => {
        done();
        kill(worker);
        reject(new SqlTimeout(`the statement ran past its time cap of ${timeoutMs} ms and was stopped`));
      }, Math.max(0, deadline - Date.now()));
      const onAbort = (): void => {
        done();
        kill(worker);
        reject(abortReason(signal));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      worker.pending = (reply) => {
        done();
        if (reply instanceof Error) reject(reply);
        else resolve(reply);
      };
      worker.child.send(request, (err) => {
        if (err !== null) worker.pending?.(err);
      });
    });

  const waitForPosition = async (minPosition: number, deadline: number, signal: AbortSignal | undefined): Promise<void> => {
    let db: Database.Database;
    try {
      // A short busy timeout: this connection is on the event loop's thread.
      db = new Database(options.file, { readonly: true, fileMustExist: true, timeout: 250 });
    } catch (err) {
      const why = err instanceof Database.SqliteError ? `${err.message} (${err.code})` : err instanceof Error ? err.message : String(err);
      throw new ReadModelUnavailable(`the read models (${options.file}) cannot be opened: ${why}; has a projector run yet?`, {
        cause: err,
      });
    }
    try {
      db.defaultSafeIntegers(true);
      const started = Date.now();
      for (;;) {
        const slowest = slowestProjection(db);
        const position = slowest?.position ?? 0;
        if (position >= minPosition) return;
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new ReadModelBehind(slowest?.projection ?? "(none has a checkpoint yet)", position, minPosition, Date.now() - started);
        }
        await sleep(Math.min(pollMs, left), undefined, signal === undefined ? {} : { signal });
      }
    } catch (err) {
      if (err instanceof Database.SqliteError) {
        throw new ReadModelUnavailable(`the read models (${options.file}) cannot be read: ${err.message} (${err.code})`, {
          cause: err,
        });
      }
      if (signal?.aborted === true) throw abortReason(signal);
      throw err;
    } finally {
      db.close();
    }
  };

  // All started now, so that no query spends its time cap on loading one, not even right after another query's
  // worker was killed (its replacement loads while the others serve).
  if (options.lazy !== true) for (let i = 0; i < size; i++) spawn();

  return {
    async run(sql, { maxRows, timeoutMs, minPosition = 0, signal }) {
      if (closed) throw new Error("the SQL runner is closed");
      if (!Number.isInteger(maxRows) || maxRows < 1) throw new RangeError(`maxRows must be a whole number of 1 or more, got ${maxRows}`);
      if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
        throw new RangeError(`timeoutMs must be a whole number of 1 or more, got ${timeoutMs}`);
      }
      const deadline = Date.now() + timeoutMs;
      if (signal?.aborted === true) throw abortReason(signal);
      if (minPosition > 0) await waitForPosition(minPosition, deadline, signal);
      const worker = await acquire(deadline, timeoutMs, signal);
      let reply: QueryReply;
      try {
        reply = await ask(worker, { file: options.file, sql, maxRows, killAt: deadline + orphanGraceMs }, deadline, timeoutMs, signal);
      } finally {
        release(worker);
      }
      if (reply.ok) return { columns: reply.columns, rows: reply.rows, truncated: reply.truncated, position: reply.position };
      throw failureError(reply.error);
    },
    async ready() {
      if (closed) throw new Error("the SQL runner is closed");
      if (workers.size === 0) spawn();
      try {
        await Promise.any([...workers].map((w) => w.ready));
      } catch (err) {
        throw err instanceof AggregateError && err.errors[0] instanceof Error ? err.errors[0] : err;
      }
    },
    async close() {
      closed = true;
      const err = new Error("the SQL runner is closed");
      for (const waiter of waiters.splice(0)) waiter.fail(err);
      const all = [...workers];
      for (const worker of all) kill(worker);
      await Promise.all(all.map((w) => w.ended));
    },
  };
}

function failureError(failure: QueryFailure): Error {
  switch (failure.kind) {
    case "refused":
      return new SqlRefused(failure.message, failure.code);
    case "unavailable":
      return new ReadModelUnavailable(failure.message);
    case "failed":
      return new Error(`the SQL worker failed: ${failure.message}`);
  }
}

function running(n: number): string {
  return n === 1 ? "1 statement is running" : `${n} statements are running`;
}

function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new Error("the query was aborted", { cause: reason });
}
