import { encodeCommit } from "../streams/commit-codec.js";
import type { StoredCommit } from "../streams/event-store.js";
import type { ReadModelDb } from "./read-model-db.js";

/** A commit that a projection could not apply, as the `parked_commits` table holds it for an operator. */
export interface ParkedCommit {
  readonly projection: string;
  /** The commit's stream sequence. */
  readonly position: number;
  readonly subject: string;
  /** The types of its events, in order. */
  readonly eventTypes: readonly string[];
  /**
   * The commit as a `foldline.store.v1.Commit` message, re-encoded from what the projector decoded (fields
   * unknown to this version of foldline are not in it): enough to decode it, or to inspect it with `buf`.
   */
  readonly commitBytes: Uint8Array;
  /** The error its apply threw the last time it was parked. */
  readonly error: string;
  /** Attempts at applying it alone, summed over every time it was parked. */
  readonly attempts: number;
  /** When it was first parked. */
  readonly parkedAt: Date;
  /** When it was last parked. */
  readonly updatedAt: Date;
}

interface ParkedRow {
  projection: string;
  position: bigint;
  subject: string;
  event_types: string;
  commit_bytes: Buffer;
  error: string;
  attempts: bigint;
  parked_at: string;
  updated_at: string;
}

/**
 * The commits parked for `projection`, in stream order. A parked commit is one that is not reflected in the
 * read model: with `onPoison: "skip"` the checkpoint has moved past it, with `"stop"` the projector waits in
 * front of it. Once a projector applies it after all (the projection fixed, the projector restarted) its row is
 * removed in that same transaction. Works on a read-only connection too.
 */
export function listParked(db: ReadModelDb, projection: string): ParkedCommit[] {
  return db
    .prepare<[string], ParkedRow>("SELECT * FROM parked_commits WHERE projection = ? ORDER BY position")
    .all(projection)
    .map((row) => ({
      projection: row.projection,
      position: Number(row.position),
      subject: row.subject,
      eventTypes: JSON.parse(row.event_types) as string[],
      commitBytes: row.commit_bytes,
      error: row.error,
      attempts: Number(row.attempts),
      parkedAt: new Date(row.parked_at),
      updatedAt: new Date(row.updated_at),
    }));
}

/** The projector's statements on `parked_commits` for one projection; see {@link createParking}. */
export interface Parking {
  /**
   * Parks `commit`, or, when it is parked already, adds `attempts` to its attempts and records `error` as the
   * latest. Run it inside the transaction that decides what happens to the checkpoint.
   */
  park(commit: StoredCommit, error: string, attempts: number): void;
  /** Removes the rows of the commits from `from` to `to` (inclusive), now applied; returns how many there were. */
  clear(from: number, to: number): number;
  /** How many commits are parked. */
  count(): number;
  /** How many parked commits come after `position`: those a projector may yet apply. */
  countAfter(position: number): number;
}

/** Prepares the statements on `parked_commits` that a projector of `projection` uses. */
export function createParking(db: ReadModelDb, projection: string): Parking {
  const upsert = db.prepare<[string, number, string, string, Uint8Array, string, number, string, string]>(
    `INSERT INTO parked_commits
       (projection, position, subject, event_types, commit_bytes, error, attempts, parked_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (projection, position) DO UPDATE SET
       error = excluded.error, attempts = attempts + excluded.attempts, updated_at = excluded.updated_at`,
  );
  const remove = db.prepare<[string, number, number]>(
    "DELETE FROM parked_commits WHERE projection = ? AND position BETWEEN ? AND ?",
  );
  const count = db.prepare<[string, number], { n: bigint }>(
    "SELECT count(*) AS n FROM parked_commits WHERE projection = ? AND position > ?",
  );
  return {
    park(commit, error, attempts) {
      const now = new Date().toISOString();
      upsert.run(
        projection,
        commit.seq,
        commit.subject,
        JSON.stringify(commit.events.map((e) => e.type)),
        encodeCommit(commit),
        error,
        attempts,
        now,
        now,
      );
    },
    clear: (from, to) => remove.run(projection, from, to).changes,
    count: () => Number(count.get(projection, -1)?.n ?? 0n),
    countAfter: (position) => Number(count.get(projection, position)?.n ?? 0n),
  };
}
