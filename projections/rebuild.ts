import { rmSync } from "node:fs";
import type { Logger } from "pino";
import type { EventStore } from "../streams/event-store.js";
import { RebuildFailed } from "./errors.js";
import { createProjector, type Projection, type Projector, type ProjectorStatus } from "./projector.js";
import { openReadModelDb, type ReadModelDb } from "./read-model-db.js";

/** The live side of a rebuild or diff: the read-model file and how to pause and resume its projector. */
export interface LiveProjection {
  /** The live read-model file; the scratch copy is built next to it. */
  readonly file: string;
  /** The connection the live projectors write with: the switch runs on it. */
  readonly db: ReadModelDb;
  /** Stops the projection's live projector; resolves with its position once it has stopped. */
  pause(): Promise<number>;
  /** Starts the projection's live projector again, from whatever checkpoint the file holds now. */
  resume(): void;
}

/** What a rebuild or diff is doing, for status. */
export interface RebuildProgress {
  /** `building`: the scratch copy catches up with the stream; `aligning`: the live projector is paused and both
   * copies are brought to one position; then `switching` (rebuild) or `comparing` (diff). */
  phase: "building" | "aligning" | "switching" | "comparing";
  /** The scratch copy's position. */
  position: number;
}

/** Options of {@link rebuildProjection} and {@link diffProjection}. */
export interface RebuildOptions {
  readonly store: EventStore;
  readonly projection: Projection;
  readonly live: LiveProjection;
  readonly log: Logger;
  /** Commits per transaction of the scratch projector (default 2000). */
  readonly batchSize?: number;
  /**
   * The scratch copy counts as caught up, and the live projector is paused, once it is at most this many commits
   * behind the stream's head (default 1000). The pause lasts as long as those take to apply.
   */
  readonly closeEnough?: number;
  /** Cancels: the scratch copy is removed, the live read model stays as it was, and the call rejects. */
  readonly signal?: AbortSignal;
  /** Updated as the work goes on. */
  readonly progress?: RebuildProgress;
}

/** A table of a read model and its rows. */
export interface TableRows {
  readonly table: string;
  readonly rows: number;
}

/** What {@link rebuildProjection} switched in. */
export interface RebuildReport {
  readonly projection: string;
  /** The position of the new read model when it was switched in. */
  readonly position: number;
  readonly tables: readonly TableRows[];
  readonly durationMs: number;
}

/** A JSON value of a row: integers beyond 2^53 as strings, blobs as base64. */
export type RowJson = Record<string, string | number | null>;

/** A row that differs, by its primary key: the live row, the rebuilt row, or both when they differ. */
export interface RowDifference {
  readonly key: RowJson;
  readonly live?: RowJson;
  readonly rebuilt?: RowJson;
}

/** One table of a {@link DiffReport}. */
export interface TableDiff {
  readonly table: string;
  readonly liveRows: number;
  readonly rebuiltRows: number;
  /** Rows of the live table that the rebuilt one lacks. */
  readonly onlyInLive: number;
  /** Rows of the rebuilt table that the live one lacks. */
  readonly onlyInRebuilt: number;
  /** The live table is missing or has other columns: its rows were counted, not compared. */
  readonly schemaDiffers: boolean;
  /** Up to `maxRowsPerTable` differing rows, paired by primary key. */
  readonly rows: readonly RowDifference[];
}

/** What {@link diffProjection} found. */
export interface DiffReport {
  readonly projection: string;
  /** The position both copies reflected when compared. */
  readonly position: number;
  readonly identical: boolean;
  /** Live rows plus rebuilt rows, over every table. */
  readonly rowsCompared: number;
  /** Rows only in one copy, over every table (a changed row counts once on each side). */
  readonly differences: number;
  readonly tables: readonly TableDiff[];
  readonly durationMs: number;
}

// The bookkeeping every read-model file has: never part of a projection's own tables.
const bookkeeping = ["projection_checkpoints", "parked_commits"];
const scratchSchema = "rebuild";

/** The scratch file a rebuild or diff of `projection` builds next to `file`. */
export function scratchFileOf(file: string, projection: string): string {
  return `${file}.scratch-${projection}`;
}

/**
 * Rebuilds `projection` from the stream's first commit into a scratch SQLite file next to the live one, with the
 * ordinary projector runtime, while the live projector goes on; then pauses the live projector, brings the
 * scratch copy to at least its position, and in ONE transaction on the live file replaces each table and index
 * the projection's `migrate` created in the scratch file (dropped, recreated from the scratch schema, so that a
 * changed schema is picked up, and refilled), sets the live checkpoint to the scratch position and replaces the
 * projection's parked rows with the scratch copy's. The live projector then resumes from there.
 *
 * Readers of the live file (WAL) see the old read model or the new one, never a mix. A rebuild that fails or is
 * cancelled changes nothing in the live file; either way the scratch file is removed and the live projector
 * resumed. Tables that an older version of the projection created and the new one no longer does are left as
 * they are. The projection is only ever applied: nothing it does has side effects beyond its tables.
 */
export async function rebuildProjection(options: RebuildOptions): Promise<RebuildReport> {
  const started = Date.now();
  const { projection, live, log } = options;
  return withScratch(options, async (scratch) => {
    const progress = options.progress ?? { phase: "building", position: 0 };
    const { liveAt, scratchAt } = await pauseLiveAndAlign(options, scratch, false);
    progress.phase = "switching";
    const tables = switchIn(live.db, scratch.file, projection.name, scratchAt);
    log.info({ projection: projection.name, position: scratchAt, liveWasAt: liveAt, tables }, "read model rebuilt and switched in");
    return { projection: projection.name, position: scratchAt, tables, durationMs: Date.now() - started };
  });
}

/**
 * Rebuilds `projection` into a scratch file up to exactly the live read model's position and compares the two,
 * table by table (every table the projection's `migrate` creates), row by row (`EXCEPT` both ways), reporting up
 * to `maxRowsPerTable` differing rows per table, paired by primary key, and complete counts. The live projector
 * is paused only while the two are brought to one position and compared; the live read model is not changed
 * otherwise (it may be moved forward to the scratch copy's position by its own projection first).
 */
export async function diffProjection(options: RebuildOptions & { readonly maxRowsPerTable?: number }): Promise<DiffReport> {
  const started = Date.now();
  const maxRows = options.maxRowsPerTable ?? 20;
  return withScratch(options, async (scratch) => {
    const progress = options.progress ?? { phase: "building", position: 0 };
    const { scratchAt } = await pauseLiveAndAlign(options, scratch, true);
    progress.phase = "comparing";
    const tables = compare(options.live.db, scratch.file, maxRows);
    const differences = tables.reduce((n, t) => n + t.onlyInLive + t.onlyInRebuilt, 0);
    const report: DiffReport = {
      projection: options.projection.name,
      position: scratchAt,
      identical: differences === 0 && tables.every((t) => !t.schemaDiffers),
      rowsCompared: tables.reduce((n, t) => n + t.liveRows + t.rebuiltRows, 0),
      differences,
      tables,
      durationMs: Date.now() - started,
    };
    options.log.info(
      { projection: report.projection, position: report.position, identical: report.identical, differences },
      "read model compared with a rebuild",
    );
    return report;
  });
}

interface Scratch {
  readonly file: string;
  readonly db: ReadModelDb;
  /** The scratch projector running from sequence 1. */
  readonly projector: Projector;
  /** The live projector is paused: resume it when done. */
  livePaused: boolean;
}

/** Builds a scratch copy up to near the head, runs `work` on it, and always cleans up after. */
async function withScratch<T>(options: RebuildOptions, work: (scratch: Scratch) => Promise<T>): Promise<T> {
  const { store, projection, live, log } = options;
  const file = scratchFileOf(live.file, projection.name);
  removeDbFiles(file); // left by a host that died during a rebuild
  const progress = options.progress ?? { phase: "building", position: 0 };
  progress.phase = "building";
  progress.position = 0;
  const db = openReadModelDb(file);
  const scratch: Scratch = {
    file,
    db,
    projector: createProjector({ store, db, projection, log, batchSize: options.batchSize ?? 2000 }),
    livePaused: false,
  };
  try {
    scratch.projector.start();
    const closeEnough = options.closeEnough ?? 1000;
    for (;;) {
      throwIfCancelled(options.signal, projection.name);
      const status = scratch.projector.status();
      progress.position = status.position;
      if (!following(status.state)) throw projectorStopped("scratch", projection.name, status.state, status.error);
      const head = await store.head();
      if (head - status.position <= closeEnough) break;
      await scratch.projector.waitFor(head - closeEnough, 250);
    }
    return await work(scratch);
  } catch (err) {
    log.warn({ err, projection: projection.name }, "rebuild of the read model given up; the live read model is unchanged");
    throw err instanceof RebuildFailed ? err : new RebuildFailed(`rebuild of ${projection.name} failed: ${describe(err)}`, { cause: err });
  } finally {
    await scratch.projector.stop();
    db.close();
    removeDbFiles(file);
    if (scratch.livePaused) live.resume();
  }
}

/**
 * Pauses the live projector (at L), stops the scratch one (at S), then brings the scratch copy to max(L, S) and,
 * when `both`, the live read model too, each with a projector that stops at exactly that position.
 */
async function pauseLiveAndAlign(
  options: RebuildOptions,
  scratch: Scratch,
  both: boolean,
): Promise<{ liveAt: number; scratchAt: number }> {
  const { store, projection, live, log } = options;
  const progress = options.progress ?? { phase: "aligning", position: 0 };
  progress.phase = "aligning";
  scratch.livePaused = true;
  let liveAt = await live.pause();
  await scratch.projector.stop();
  let scratchAt = scratch.projector.status().position;
  const target = Math.max(liveAt, scratchAt);
  const runTo = async (db: ReadModelDb, which: string): Promise<number> => {
    const projector = createProjector({ store, db, projection, log, batchSize: options.batchSize ?? 2000, until: target });
    projector.start();
    try {
      for (;;) {
        throwIfCancelled(options.signal, projection.name);
        const status = projector.status();
        if (status.position >= target || status.state === "stopped") return status.position;
        if (!following(status.state)) throw projectorStopped(which, projection.name, status.state, status.error);
        await projector.waitFor(target, 250);
      }
    } finally {
      await projector.stop();
    }
  };
  if (scratchAt < target) scratchAt = await runTo(scratch.db, "scratch");
  if (both && liveAt < target) liveAt = await runTo(live.db, "live");
  progress.position = scratchAt;
  throwIfCancelled(options.signal, projection.name); // cancelled while stopping the projectors: no switch after all
  if (both && liveAt !== scratchAt) {
    throw new RebuildFailed(`the live read model stopped at ${liveAt} and the scratch copy at ${scratchAt}: not comparable`);
  }
  return { liveAt, scratchAt };
}

interface SchemaObject {
  readonly type: "table" | "index";
  readonly name: string;
  readonly sql: string;
}

/** The tables and indexes the projection created in the attached scratch file, tables first. */
function scratchObjects(db: ReadModelDb): SchemaObject[] {
  return db
    .prepare<string[], SchemaObject>(
      `SELECT type, name, sql FROM ${scratchSchema}.sqlite_master
       WHERE type IN ('table', 'index') AND sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
         AND tbl_name NOT IN (${bookkeeping.map(() => "?").join(", ")})
       ORDER BY type = 'index', rowid`,
    )
    .all(...bookkeeping);
}

/** Runs `work` with `file` attached to `db` as `rebuild`; detaches after, whatever happens. */
function attached<T>(db: ReadModelDb, file: string, work: () => T): T {
  db.prepare(`ATTACH DATABASE ? AS ${scratchSchema}`).run(file);
  try {
    return work();
  } finally {
    db.exec(`DETACH DATABASE ${scratchSchema}`);
  }
}

/** The switch: one transaction on the live file. */
function switchIn(db: ReadModelDb, file: string, projection: string, position: number): TableRows[] {
  return attached(db, file, () =>
    db.transaction((): TableRows[] => {
      const objects = scratchObjects(db);
      const tables: TableRows[] = [];
      for (const { type, name, sql } of objects) {
        if (type === "table") {
          db.exec(`DROP TABLE IF EXISTS main.${quote(name)}`);
          db.exec(sql);
          const copied = db.prepare(`INSERT INTO main.${quote(name)} SELECT * FROM ${scratchSchema}.${quote(name)}`).run();
          tables.push({ table: name, rows: copied.changes });
        } else {
          db.exec(`DROP INDEX IF EXISTS main.${quote(name)}`);
          db.exec(sql);
        }
      }
      db.prepare<[string, number, string]>(
        `INSERT INTO main.projection_checkpoints (projection, position, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (projection) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`,
      ).run(projection, position, new Date().toISOString());
      // The parked rows now are those of the rebuild: commits it skipped (policy "skip") are not in it either.
      db.prepare<[string]>("DELETE FROM main.parked_commits WHERE projection = ?").run(projection);
      db.prepare<[string]>(`INSERT INTO main.parked_commits SELECT * FROM ${scratchSchema}.parked_commits WHERE projection = ?`).run(
        projection,
      );
      return tables;
    })(),
  );
}

/** Compares every table of the scratch file with the live one of the same name. */
function compare(db: ReadModelDb, file: string, maxRows: number): TableDiff[] {
  return attached(db, file, () =>
    // One read transaction: counts and rows of one state of both files.
    db.transaction((): TableDiff[] =>
      scratchObjects(db)
        .filter((o) => o.type === "table")
        .map(({ name }) => compareTable(db, name, maxRows)),
    )(),
  );
}

interface ColumnInfo {
  readonly name: string;
  readonly pk: bigint;
}

function compareTable(db: ReadModelDb, table: string, maxRows: number): TableDiff {
  const columns = (schema: string): ColumnInfo[] =>
    db.prepare<[string, string], ColumnInfo>("SELECT name, pk FROM pragma_table_info(?, ?) ORDER BY cid").all(table, schema);
  const count = (sql: string): number => Number(db.prepare<[], { n: bigint }>(`SELECT count(*) AS n FROM (${sql})`).get()?.n ?? 0n);
  const liveColumns = columns("main");
  const rebuiltColumns = columns(scratchSchema);
  const t = quote(table);
  const rebuiltRows = count(`SELECT 1 FROM ${scratchSchema}.${t}`);
  const sameColumns =
    liveColumns.length === rebuiltColumns.length && liveColumns.every((c, i) => c.name === rebuiltColumns[i]?.name);
  if (!sameColumns) {
    const liveRows = liveColumns.length === 0 ? 0 : count(`SELECT 1 FROM main.${t}`);
    return { table, liveRows, rebuiltRows, onlyInLive: liveRows, onlyInRebuilt: rebuiltRows, schemaDiffers: true, rows: [] };
  }
  const liveRows = count(`SELECT 1 FROM main.${t}`);
  const onlyLive = `SELECT * FROM main.${t} EXCEPT SELECT * FROM ${scratchSchema}.${t}`;
  const onlyRebuilt = `SELECT * FROM ${scratchSchema}.${t} EXCEPT SELECT * FROM main.${t}`;
  const onlyInLive = count(onlyLive);
  const onlyInRebuilt = count(onlyRebuilt);
  const keyColumns = rebuiltColumns.filter((c) => c.pk > 0n).sort((a, b) => Number(a.pk - b.pk));
  const keyOf = (row: RowJson): RowJson =>
    keyColumns.length === 0 ? row : Object.fromEntries(keyColumns.map((c) => [c.name, row[c.name] ?? null]));
  const sample = (sql: string): RowJson[] =>
    onlyInLive + onlyInRebuilt === 0 ? [] : db.prepare<[], Record<string, unknown>>(`${sql} LIMIT ${maxRows}`).all().map(toJson);
  const rows = new Map<string, { key: RowJson; live?: RowJson; rebuilt?: RowJson }>();
  for (const row of sample(onlyLive)) {
    const key = keyOf(row);
    rows.set(JSON.stringify(key), { key, live: row });
  }
  for (const row of sample(onlyRebuilt)) {
    const key = keyOf(row);
    const id = JSON.stringify(key);
    rows.set(id, { ...(rows.get(id) ?? { key }), rebuilt: row });
  }
  return {
    table,
    liveRows,
    rebuiltRows,
    onlyInLive,
    onlyInRebuilt,
    schemaDiffers: false,
    rows: [...rows.values()].slice(0, maxRows),
  };
}

function toJson(row: Record<string, unknown>): RowJson {
  const out: RowJson = {};
  for (const [column, value] of Object.entries(row)) {
    if (typeof value === "bigint") {
      out[column] = value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : String(value);
    } else if (value instanceof Uint8Array) {
      out[column] = Buffer.from(value).toString("base64");
    } else if (typeof value === "string" || typeof value === "number" || value === null) {
      out[column] = value;
    } else {
      out[column] = null; // SQLite has no other types: never reached
    }
  }
  return out;
}

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

function removeDbFiles(file: string): void {
  for (const suffix of ["", "-wal", "-shm", "-journal"]) rmSync(`${file}${suffix}`, { force: true });
}

function throwIfCancelled(signal: AbortSignal | undefined, projection: string): void {
  if (signal?.aborted === true) throw new RebuildFailed(`rebuild of ${projection} cancelled: ${describe(signal.reason)}`);
}

/** A rebuild waits for a projector that follows the stream, even stalled; one that retries a failing database fails it. */
function following(state: ProjectorStatus["state"]): boolean {
  return state === "running" || state === "stalled";
}

function projectorStopped(which: string, projection: string, state: string, error: string | undefined): RebuildFailed {
  return new RebuildFailed(`the ${which} projector of ${projection} stopped (${state})${error === undefined ? "" : `: ${error}`}`);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
