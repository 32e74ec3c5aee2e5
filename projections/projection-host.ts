import type { Logger } from "pino";
import type { EventStore } from "../streams/event-store.js";
import { ProjectionBusy, RebuildFailed, UnknownProjection } from "./errors.js";
import type { KvProjector } from "./kv-projector.js";
import type { Reactor } from "./reactor.js";
import { createProjector, createProjectorGroup, type Projection, type Projector } from "./projector.js";
import type { ReadModelDb } from "./read-model-db.js";
import {
  diffProjection,
  rebuildProjection,
  type DiffReport,
  type LiveProjection,
  type RebuildProgress,
  type RebuildReport,
} from "./rebuild.js";

/** A rebuild or diff under way. */
export interface ProjectionTask {
  readonly kind: "rebuild" | "diff";
  readonly phase: RebuildProgress["phase"];
  /** The scratch copy's position. */
  readonly position: number;
  readonly startedAt: Date;
}

/** What one projector is doing, as operators see it. */
export interface ProjectionStatusView {
  readonly projection: string;
  /** `process`: a process manager (a reactor), which issues commands rather than keeping a read model. */
  readonly kind: "sqlite" | "kv" | "process";
  /**
   * A projector's own state, `rebuilding` while a rebuild of its read model is under way (the live read model
   * keeps answering), or for a KV projector `standby` while another process holds its lease.
   */
  readonly state: "running" | "stalled" | "retrying" | "rebuilding" | "stopped" | "stopped-on-poison" | "failed" | "standby";
  readonly position: number;
  readonly head: number;
  readonly lag: number;
  readonly eventsPerSecond: number;
  readonly parked: number;
  readonly error?: string;
  readonly task?: ProjectionTask;
}

/** Options of a diff. */
export interface DiffOptions {
  /** Differing rows reported per table at most (default 20). */
  readonly maxRowsPerTable?: number;
}

/** The operations of the admin API: status, rebuild and diff of read models. */
export interface ProjectionAdmin {
  /** Every projector's status: SQLite read models, then KV read models. */
  status(): Promise<ProjectionStatusView[]>;
  /**
   * Rebuilds a SQLite read model beside the live one and switches to it (see `rebuildProjection`). Rejects with
   * UnknownProjection, ProjectionBusy when a rebuild or diff of it is under way, RebuildFailed when it fails.
   */
  rebuild(projection: string): Promise<RebuildReport>;
  /** Compares a SQLite read model with a rebuild at the same position (see `diffProjection`); rejects as rebuild. */
  diff(projection: string, options?: DiffOptions): Promise<DiffReport>;
}

/** The projectors of one read-model file, and the rebuilds and diffs of its read models. */
export interface ProjectionHost extends ProjectionAdmin {
  /** Starts every projector. */
  start(): void;
  /** Cancels rebuilds and diffs under way (the live read models stay as they were) and stops every projector. */
  stop(): Promise<void>;
  /** The live projectors, one per projection; a rebuild replaces its projection's. */
  projectors(): Projector[];
  /** Resolves true once `projection`'s live read model reflects `position`, false after `timeoutMs` or for an unknown one. */
  waitFor(projection: string, position: number, timeoutMs: number): Promise<boolean>;
}

/** Options of {@link createProjectionHost}. */
export interface ProjectionHostOptions {
  readonly store: EventStore;
  /** The read-model file and the connection that writes it. */
  readonly file: string;
  readonly db: ReadModelDb;
  readonly projections: readonly Projection[];
  /** KV projectors to report on (started and stopped by their owner). */
  readonly kvProjectors?: readonly KvProjector[];
  /** Process managers to report on (started and stopped by their owner). */
  readonly reactors?: readonly Reactor[];
  readonly log: Logger;
  /** Commits per transaction of the live projectors. */
  readonly batchSize?: number;
  /** Commits per transaction of the scratch projectors of rebuilds and diffs (default 2000). */
  readonly rebuildBatchSize?: number;
}

interface Task {
  readonly kind: "rebuild" | "diff";
  readonly progress: RebuildProgress;
  readonly startedAt: Date;
  readonly abort: AbortController;
  done: Promise<unknown>;
}

/**
 * Creates a projection host: a projector per projection on one read-model file (the only writer of it), and the
 * admin operations on them. One rebuild or diff at a time per projection; several projections may rebuild at once.
 */
export function createProjectionHost(options: ProjectionHostOptions): ProjectionHost {
  const { store, file, db, log } = options;
  const byName = new Map(options.projections.map((p) => [p.name, p]));
  const live = new Map<string, Projector>();
  const tasks = new Map<string, Task>();
  let stopped = true;
  const batch = options.batchSize === undefined ? {} : { batchSize: options.batchSize };
  const newProjector = (projection: Projection): Projector => createProjector({ store, db, projection, log, ...batch });
  // One read of the stream feeds them all; a projection switched in by a rebuild gets a projector of its own.
  const group = createProjectorGroup({ store, db, projections: options.projections, log, ...batch });
  for (const [i, projection] of options.projections.entries()) {
    const projector = group.projectors[i];
    if (projector !== undefined) live.set(projection.name, projector);
  }

  const projectionNamed = (name: string): Projection => {
    const projection = byName.get(name);
    if (projection === undefined) {
      throw new UnknownProjection(`no SQLite projection named "${name}" (known: ${[...byName.keys()].join(", ")})`);
    }
    return projection;
  };

  const liveSide = (projection: Projection): LiveProjection => ({
    file,
    db,
    async pause() {
      const projector = live.get(projection.name);
      await projector?.stop();
      return projector?.status().position ?? 0;
    },
    resume() {
      // A new projector: the switch moved the checkpoint that the old one keeps in memory.
      const projector = newProjector(projection);
      live.set(projection.name, projector);
      if (!stopped) projector.start();
    },
  });

  const runTask = async <T>(kind: Task["kind"], name: string, work: (task: Task, projection: Projection) => Promise<T>): Promise<T> => {
    const projection = projectionNamed(name);
    const running = tasks.get(name);
    if (running !== undefined) throw new ProjectionBusy(`a ${running.kind} of ${name} is under way; try again once it is done`);
    if (stopped) throw new RebuildFailed(`the projectors of this host are stopped`);
    const task: Task = {
      kind,
      progress: { phase: "building", position: 0 },
      startedAt: new Date(),
      abort: new AbortController(),
      done: Promise.resolve(),
    };
    tasks.set(name, task);
    const done = work(task, projection).finally(() => tasks.delete(name));
    task.done = done.catch(() => undefined);
    return await done;
  };

  const taskOptions = (task: Task, projection: Projection) => ({
    store,
    projection,
    live: liveSide(projection),
    log,
    signal: task.abort.signal,
    progress: task.progress,
    ...(options.rebuildBatchSize === undefined ? {} : { batchSize: options.rebuildBatchSize }),
  });

  return {
    start() {
      stopped = false;
      for (const projector of live.values()) projector.start();
    },

    async stop() {
      stopped = true;
      for (const task of tasks.values()) task.abort.abort(new Error("the projector host is stopping"));
      await Promise.all([...tasks.values()].map((t) => t.done));
      await Promise.all([...live.values()].map((p) => p.stop()));
    },

    projectors: () => [...live.values()],

    async waitFor(projection, position, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const projector = live.get(projection);
        if (projector === undefined) return false;
        const left = deadline - Date.now();
        // In short steps: a rebuild may replace the projector meanwhile.
        if (await projector.waitFor(position, Math.max(0, Math.min(left, 100)))) return true;
        if (Date.now() >= deadline) return false;
      }
    },

    async status() {
      const views: ProjectionStatusView[] = [];
      // The head as of now, rather than as the projectors last read it (up to a second ago); theirs when NATS is away.
      let head = await store.head().catch(() => 0);
      for (const projector of live.values()) head = Math.max(head, projector.status().head);
      for (const [name, projector] of live) {
        const s = projector.status();
        const task = tasks.get(name);
        views.push({
          projection: name,
          kind: "sqlite",
          state: task?.kind === "rebuild" ? "rebuilding" : s.state,
          position: s.position,
          head,
          lag: Math.max(0, head - s.position),
          eventsPerSecond: s.commitsPerSecond,
          parked: s.parked,
          ...(s.error === undefined ? {} : { error: s.error }),
          ...(task === undefined
            ? {}
            : { task: { kind: task.kind, phase: task.progress.phase, position: task.progress.position, startedAt: task.startedAt } }),
        });
      }
      for (const kv of options.kvProjectors ?? []) {
        const s = kv.status();
        views.push({
          projection: s.projection,
          kind: "kv",
          state: s.state,
          position: s.position,
          head,
          lag: Math.max(0, head - s.position),
          eventsPerSecond: 0,
          parked: 0,
          ...(s.error === undefined ? {} : { error: s.error }),
        });
      }
      for (const reactor of options.reactors ?? []) {
        const s = reactor.status();
        views.push({
          projection: s.reaction,
          kind: "process",
          state: s.state,
          position: s.position,
          head,
          // It follows its own subjects only: what it is behind by is the reactions under way.
          lag: s.inFlight,
          eventsPerSecond: 0,
          parked: s.parked,
          ...(s.error === undefined ? {} : { error: s.error }),
        });
      }
      return views;
    },

    rebuild: (name) => runTask("rebuild", name, (task, projection) => rebuildProjection(taskOptions(task, projection))),

    diff: (name, diff = {}) =>
      runTask("diff", name, (task, projection) =>
        diffProjection({
          ...taskOptions(task, projection),
          ...(diff.maxRowsPerTable === undefined ? {} : { maxRowsPerTable: diff.maxRowsPerTable }),
        }),
      ),
  };
}
