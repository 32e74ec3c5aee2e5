import {
  DiscardPolicy,
  JetStreamApiError,
  JetStreamApiCodes,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import type { EventStreamSettings } from "./config.js";
import { TopologyError } from "./errors.js";

/** The subject space of the event stream's commits: `ev.<aggregate type>.<aggregate id>`. */
export const eventSubjects = "ev.>";

/**
 * The subject space of command records in the event stream: `cmd.<command id>`, one message per command id,
 * stored in the same atomic batch as the command's commits (see `EventStore.appendBatch`).
 */
export const recordSubjects = "cmd.>";

/** The subject of the record of `commandId`. */
export function recordSubject(commandId: string): string {
  return `cmd.${commandId}`;
}

/** A KV bucket that foldline declares. */
export interface BucketSpec {
  readonly name: string;
  readonly description: string;
  /** Values kept per key (1 keeps only the latest). */
  readonly history: number;
  /** Entries older than this are removed; 0 keeps them forever. */
  readonly ttlMs: number;
}

/** What {@link applyTopology} creates or brings in line. */
export interface TopologySpec {
  readonly stream: EventStreamSettings;
  readonly buckets: readonly BucketSpec[];
}

/** The bucket of aggregate snapshots, one entry per aggregate. */
export const snapshotsBucket = "foldline-snapshots";

/** The bucket of leases (projector workers' leadership), one entry per lease. */
export const leasesBucket = "foldline-leases";

/** The checkpoints and parked commits of process managers (reactors that issue commands). */
export const processesBucket = "foldline-processes";

/** The engine's own buckets; the domain may declare more beside them. */
export const engineBuckets: readonly BucketSpec[] = [
  { name: snapshotsBucket, description: "latest snapshot per aggregate", history: 1, ttlMs: 0 },
  { name: leasesBucket, description: "leader leases of projector workers", history: 1, ttlMs: 0 },
  { name: processesBucket, description: "checkpoints and parked commits of process managers", history: 1, ttlMs: 0 },
];

/** One thing {@link applyTopology} did. */
export interface TopologyChange {
  readonly stream: string;
  readonly action: "created" | "updated";
  /** For updates, `field: old -> new` per changed field. */
  readonly details: readonly string[];
}

/** The event stream's configuration as foldline needs it. Fields not named keep the server's defaults. */
function eventStreamConfig(settings: EventStreamSettings): Partial<StreamConfig> & { name: string } {
  return {
    name: settings.name,
    subjects: [eventSubjects, recordSubjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: settings.replicas,
    duplicate_window: nanos(settings.duplicateWindowMs),
    deny_delete: true,
    deny_purge: true,
    allow_direct: true,
    allow_rollup_hdrs: false,
    // Appends go in atomic batches (a commit together with its command record); nats-server 2.12+.
    allow_atomic: true,
  };
}

/**
 * Creates the event stream and the buckets when missing and brings existing ones in line with the declaration,
 * idempotently. A difference that the server cannot change in place (storage type, retention, or a guard that
 * cannot be lifted) raises a TopologyError naming the field, the deployed value and the declared one; nothing is
 * silently ignored. Returns what it changed.
 */
export async function applyTopology(
  nc: NatsConnection,
  jsm: JetStreamManager,
  spec: TopologySpec,
): Promise<TopologyChange[]> {
  const changes: TopologyChange[] = [];
  const stream = eventStreamConfig(spec.stream);
  const streamChange = await reconcileStream(jsm, stream, async () => {
    await jsm.streams.add(stream);
  });
  if (streamChange) changes.push(streamChange);

  const kvm = new Kvm(nc);
  for (const bucket of spec.buckets) {
    const declared: Partial<StreamConfig> & { name: string } = {
      name: `KV_${bucket.name}`,
      max_msgs_per_subject: bucket.history,
      max_age: nanos(bucket.ttlMs),
      num_replicas: spec.stream.replicas,
      storage: StorageType.File,
    };
    const change = await reconcileStream(jsm, declared, async () => {
      await kvm.create(bucket.name, {
        description: bucket.description,
        history: bucket.history,
        ttl: bucket.ttlMs,
        replicas: spec.stream.replicas,
        storage: StorageType.File,
      });
    });
    if (change) changes.push(change);
  }
  return changes;
}

/** Fields a stream update cannot change, or can change only one way (the value that may not be left). */
const fixedFields = ["storage", "retention"] as const;
const oneWayGuards = ["deny_delete", "deny_purge", "sealed"] as const;

/** What to do when the server refuses to change a field, for fields whose refusal has a known remedy. */
const refusalRemedies: Partial<Record<keyof StreamConfig, string>> = {
  // A stream created with `persist_mode: async`, or a mirror, can never take allow_atomic (the server answers
  // 10052 or 10198), and a server before 2.12 does not know it.
  allow_atomic:
    "allow_atomic (atomic batch publish) needs nats-server 2.12 or newer on every server of the stream, and a " +
    "stream that is not a mirror and has the default persist_mode, which cannot be changed in place: upgrade " +
    "the servers, or migrate the events to a new stream that foldline declares",
};

/**
 * Creates `declared` when the stream does not exist (through `create`), otherwise updates the fields of
 * `declared` that differ, in place (turning `allow_atomic` on included). Returns what it did, or undefined when
 * the stream already matched. Throws a TopologyError when a field cannot be changed in place or the server
 * refuses the change, saying what to do where that is known.
 */
export async function reconcileStream(
  jsm: JetStreamManager,
  declared: Partial<StreamConfig> & { name: string },
  create: () => Promise<void>,
): Promise<TopologyChange | undefined> {
  let current: StreamConfig;
  try {
    current = (await jsm.streams.info(declared.name)).config;
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamNotFound) throw err;
    try {
      await create();
    } catch (createErr) {
      if (!(createErr instanceof JetStreamApiError)) throw createErr;
      throw new TopologyError(
        `stream ${declared.name} could not be created: the server refused with code ${createErr.code}: ${createErr.message}`,
        { cause: createErr },
      );
    }
    return { stream: declared.name, action: "created", details: [] };
  }

  const differing = (Object.keys(declared) as (keyof StreamConfig)[]).filter(
    (key) => key !== "name" && !sameValue(current[key], declared[key]),
  );
  if (differing.length === 0) return undefined;
  const show = (key: keyof StreamConfig): string =>
    `${key}: ${JSON.stringify(current[key])} -> ${JSON.stringify(declared[key])}`;

  const fixed = differing.filter(
    (key) =>
      (fixedFields as readonly string[]).includes(key) ||
      ((oneWayGuards as readonly string[]).includes(key) && current[key] === true),
  );
  if (fixed.length > 0) {
    throw new TopologyError(
      `stream ${declared.name} differs from its declaration in what cannot be changed in place ` +
        `(${fixed.map(show).join("; ")}); migrate it to a new stream or change the declaration`,
    );
  }
  try {
    await jsm.streams.update(declared.name, { ...current, ...declared });
  } catch (err) {
    if (!(err instanceof JetStreamApiError)) throw err;
    const remedies = differing.flatMap((key) => refusalRemedies[key] ?? []);
    throw new TopologyError(
      `stream ${declared.name} could not be changed (${differing.map(show).join("; ")}): ` +
        `the server refused with code ${err.code}: ${err.message}` +
        remedies.map((r) => `; ${r}`).join(""),
      { cause: err },
    );
  }
  return { stream: declared.name, action: "updated", details: differing.map(show) };
}

function sameValue(a: unknown, b: unknown): boolean {
  return normal(a) === normal(b);
}

/** The server leaves false, zero and empty fields out of the configuration it returns; so does the comparison. */
function normal(value: unknown): unknown {
  if (value === undefined || value === false || value === 0) return undefined;
  if (Array.isArray(value)) return value.length === 0 ? undefined : [...(value as unknown[])].map(String).sort().join("\n");
  return value;
}
