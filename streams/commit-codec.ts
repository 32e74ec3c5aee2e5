import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { CommitSchema } from "../gen/foldline/store/v1/commit_pb.js";

/** One event as the store carries it: a type name, a schema version and opaque payload bytes. */
export interface EventRecord {
  readonly type: string;
  readonly schemaVersion: number;
  readonly payload: Uint8Array;
}

/** Who caused a commit, why and when. Empty strings stand for "not given". */
export interface CommitMetadata {
  readonly commandId: string;
  readonly actor: string;
  readonly correlationId: string;
  readonly causationId: string;
  readonly recordedAt: Date;
}

/** A commit's content: the events of one command and their metadata. */
export interface CommitBody {
  readonly events: readonly EventRecord[];
  readonly metadata: CommitMetadata;
}

/** Encodes a commit as the `foldline.store.v1.Commit` protobuf message stored in the stream. */
export function encodeCommit(body: CommitBody): Uint8Array {
  const { metadata } = body;
  return toBinary(
    CommitSchema,
    create(CommitSchema, {
      events: body.events.map((e) => ({ type: e.type, schemaVersion: e.schemaVersion, payload: e.payload })),
      metadata: {
        commandId: metadata.commandId,
        actor: metadata.actor,
        correlationId: metadata.correlationId,
        causationId: metadata.causationId,
        recordedAt: timestampFromMs(metadata.recordedAt.getTime()),
      },
    }),
  );
}

/** Decodes a stored commit. Throws when the bytes are not a Commit message. */
export function decodeCommit(bytes: Uint8Array): CommitBody {
  const commit = fromBinary(CommitSchema, bytes);
  const m = commit.metadata;
  return {
    events: commit.events.map((e) => ({ type: e.type, schemaVersion: e.schemaVersion, payload: e.payload })),
    metadata: {
      commandId: m?.commandId ?? "",
      actor: m?.actor ?? "",
      correlationId: m?.correlationId ?? "",
      causationId: m?.causationId ?? "",
      recordedAt: m?.recordedAt === undefined ? new Date(0) : timestampDate(m.recordedAt),
    },
  };
}
