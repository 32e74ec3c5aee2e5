import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import type { EventStore, StoredCommit } from "../streams/event-store.js";
import { createLeaderLoop } from "./leader-loop.js";
import type { Lease } from "./lease.js";
import { createHeadWatch, createStallMeter } from "./progress.js";

/** An entry a KV projection writes: a value to put, or null to delete the key. */
export interface KvWrite {
  readonly key: string;
  readonly value: Uint8Array | null;
}

/**
 * A read model in JetStream KV, for point lookups and watches. Each commit maps to the entries it sets, from the
 * commit alone, so that applying a commit again writes the same values: idempotent by construction.
 */
export interface KvProjection {
  /** Unique per bucket; its checkpoint is the key `checkpoint.<name>`. */
  readonly name: string;
  /** The entries `commit` sets, in order; none for commits it does not model. Pure. */
  entries(commit: StoredCommit): readonly KvWrite[];
}

/** What a KV projector is doing. */
export interface KvProjectorStatus {
  readonly projection: string;
  /**
   * `standby` while another process holds its lease; `running`; `stalled` when it is behind the stream's head
   * with nothing written for `stallAfterMs`; `retrying` after a failure (NATS away), until it reads the stream
   * again from its checkpoint; `stopped`.
   */
  readonly state: "standby" | "running" | "stalled" | "retrying" | "stopped";
  readonly position: number;
  /** The stream's head as last read while running (0 before). */
  readonly head: number;
  readonly error?: string;
}

/** Runs one KV projection while it holds its lease. */
export interface KvProjector {
  /** Stands by for the lease, projects while it holds it, stands by again when it loses it. */
  start(): void;
  stop(): Promise<void>;
  status(): KvProjectorStatus;
}

/** Options of {@link createKvProjector}. */
export interface KvProjectorOptions {
  readonly store: EventStore;
  readonly kv: KV;
  readonly projection: KvProjection;
  /** One writer at a time: a writer far behind another would put older values over newer ones. */
  readonly lease: Lease;
  readonly log: Logger;
  /** Behind the head with nothing written for this long, it shows `stalled` (default 5 000 ms). */
  readonly stallAfterMs?: number;
}

/**
 * Creates a KV projector. It follows the stream from its checkpoint, writes each turn's entries (published in
 * order on one connection, so that the server applies them in order), then the checkpoint. A crash between the
 * two replays those commits, which rewrites the same values. A failing write stops the batch; the projector
 * retries it from the checkpoint after a pause.
 */
export function createKvProjector(options: KvProjectorOptions): KvProjector {
  const { store, kv, projection, lease, log } = options;
  const checkpointKey = `checkpoint.${projection.name}`;
  let position = 0;
  // The failure it is retrying after, until it reads the stream again.
  let failure: string | undefined;
  const progress = createStallMeter(options.stallAfterMs ?? 5_000);
  const heads = createHeadWatch(store, log, `kv:${projection.name}`, (head) => {
    progress.sawHead(head, position);
  });

  const readCheckpoint = async (): Promise<number> => {
    const entry = await kv.get(checkpointKey);
    return entry === null || entry.operation !== "PUT" ? 0 : (entry.json<{ position: number }>().position);
  };

  const write = async (commits: readonly StoredCommit[]): Promise<void> => {
    const puts: Promise<unknown>[] = [];
    for (const commit of commits) {
      for (const w of projection.entries(commit)) puts.push(w.value === null ? kv.delete(w.key) : kv.put(w.key, w.value));
    }
    await Promise.all(puts);
    const last = commits[commits.length - 1];
    if (last === undefined) return;
    await kv.put(checkpointKey, new TextEncoder().encode(JSON.stringify({ position: last.seq })));
    position = last.seq;
    progress.advanced();
  };

  /** Projects until the lease is lost or the projector stops. */
  const project = async (signal: AbortSignal): Promise<void> => {
    position = await readCheckpoint();
    let batch: StoredCommit[] = [];
    let flushAt: Promise<"turn"> | undefined;
    const commits = store.follow({
      fromSeq: position + 1,
      signal,
      onOpen: () => {
        failure = undefined;
      },
      onRestart: (r) => {
        log.info({ projection: projection.name, reason: r.reason, fromSeq: r.fromSeq, err: r.error }, "the KV projector's read started again");
      },
    });
    let next = commits.next();
    for (;;) {
      const got =
        batch.length === 0
          ? await next
          : await Promise.race([
              next,
              (flushAt ??= new Promise((resolve) => {
                setImmediate(() => {
                  resolve("turn");
                });
              })),
            ]);
      if (got === "turn" || (got.done !== true && batch.length >= 500)) {
        flushAt = undefined;
        const done = batch;
        batch = [];
        await write(done);
        if (got === "turn") continue;
      }
      if (got.done === true) break;
      batch.push(got.value);
      next = commits.next();
    }
    await write(batch);
  };

  const loop = createLeaderLoop({
    lease,
    log,
    name: `KV projection ${projection.name}`,
    work: async (signal) => {
      progress.advanced();
      heads.start();
      try {
        await project(signal);
      } catch (err) {
        failure = err instanceof Error ? err.message : String(err);
        throw err;
      } finally {
        heads.stop();
      }
    },
  });
  return {
    start: () => {
      loop.start();
    },
    stop: () => loop.stop(),
    status: () => {
      const head = heads.head();
      const base = { projection: projection.name, position, head };
      const state = loop.state();
      if (state !== "running") return { ...base, state };
      if (failure !== undefined) return { ...base, state: "retrying", error: failure };
      const stalled = progress.stalled(head, position);
      return stalled === undefined ? { ...base, state } : { ...base, state: "stalled", error: stalled };
    },
  };
}
