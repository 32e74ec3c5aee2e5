import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV, KvEntry } from "@nats-io/kv";
import { unavailableOr } from "../streams/nats-errors.js";
import type { JsPublisher } from "../streams/js-publisher.js";
import { commandsBucket } from "../streams/topology.js";

/**
 * What the pipeline remembers of a command id, in the `foldline-commands` bucket (key: the command id).
 *
 * A record is written as `pending` before the command's commit is appended, so that a commit never exists
 * without its record: a repeat that finds `pending` looks for the commit on `subject` after `after` and answers
 * from it, then marks the record `done` with the commit's position (`commitSeq`) so that later repeats read the
 * commit directly. Commands that appended nothing store their outcome as `done` without a `commitSeq`.
 */
export interface CommandRecord {
  readonly state: "pending" | "done";
  /** Identifies the request: a repeat must carry the same fingerprint. */
  readonly fingerprint: string;
  /** The aggregate's subject. */
  readonly subject: string;
  /** Every commit of this command has a greater stream sequence. */
  readonly after: number;
  /** The pipeline instance that wrote the record, so that it knows its own attempts once they are over. */
  readonly owner?: string;
  /** For `done`: the aggregate's version and position that the command answered. */
  readonly version?: number;
  readonly position?: number;
  /** For `done`: the stream sequence of the command's commit, when it appended one. */
  readonly commitSeq?: number;
}

/** An existing record, as {@link CommandRecords.claim} found it. */
export interface ExistingRecord {
  readonly record: CommandRecord;
  readonly revision: number;
  readonly createdAt: Date;
}

/** The outcome of a claim: the caller owns the command id, or somebody had it before. */
export type Claim = { readonly claimed: true; readonly revision: number } | ({ readonly claimed: false } & ExistingRecord);

/** Durable command records: the idempotency keys of the command pipeline. */
export interface CommandRecords {
  /** Writes `record` unless the command id already has one; returns the existing one then. */
  claim(commandId: string, record: CommandRecord): Promise<Claim>;
  /** Replaces the record at `revision`; returns the new revision, or undefined when somebody else changed it first. */
  replace(commandId: string, record: CommandRecord, revision: number): Promise<number | undefined>;
  /** Removes the record at `revision` (a refused command leaves nothing behind, so it may be retried). */
  release(commandId: string, revision: number): Promise<void>;
}

/**
 * Creates the command records on the opened `foldline-commands` bucket. Claims, the hot path, are written through `publisher`
 * straight to the bucket's subject; the rest goes through the KV client. NATS failures become UnavailableError.
 */
export function createCommandRecords(kv: KV, publisher: JsPublisher): CommandRecords {
  const subjectPrefix = `$KV.${commandsBucket}.`;
  const encode = (record: CommandRecord): Uint8Array => new TextEncoder().encode(JSON.stringify(record));
  const existing = (entry: KvEntry): ExistingRecord => ({
    record: entry.json<CommandRecord>(),
    revision: entry.revision,
    createdAt: entry.created,
  });
  const isWrongLast = (err: unknown): boolean =>
    err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence;

  return {
    async claim(commandId, record) {
      const data = encode(record);
      try {
        // `kv.create` would read the key after any failure, a timeout too, doubling the wait in an outage; so
        // this writes with an expected revision itself. A removed record leaves a marker whose revision the
        // second round expects.
        let expected = 0;
        for (let round = 0; ; round++) {
          try {
            const ack = await publisher.publish(subjectPrefix + commandId, data, { expectedLastSubjectSeq: expected });
            return { claimed: true, revision: ack.seq };
          } catch (err) {
            if (!isWrongLast(err) || round > 1) throw err;
          }
          const entry = await kv.get(commandId);
          if (entry !== null && entry.operation === "PUT") return { claimed: false, ...existing(entry) };
          expected = entry?.revision ?? 0;
        }
      } catch (err) {
        throw unavailableOr(err, `a command record write for ${commandId}`);
      }
    },

    async replace(commandId, record, revision) {
      try {
        return await kv.update(commandId, encode(record), revision);
      } catch (err) {
        if (isWrongLast(err)) return undefined;
        throw unavailableOr(err, `a command record write for ${commandId}`);
      }
    },

    async release(commandId, revision) {
      try {
        await kv.delete(commandId, { previousSeq: revision });
      } catch (err) {
        if (isWrongLast(err)) return;
        throw unavailableOr(err, `a command record removal for ${commandId}`);
      }
    },
  };
}
