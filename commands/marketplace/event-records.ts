import { createRegistry, fromBinary, toBinary, type Message } from "@bufbuild/protobuf";
import { file_foldline_marketplace_v1_events } from "../../gen/foldline/marketplace/v1/events_pb.js";
import type { EventRecord } from "../../streams/commit-codec.js";

/** The schema version every marketplace event is written with. */
const schemaVersion = 1;
const events = createRegistry(file_foldline_marketplace_v1_events);

/** The storage form of a persisted event message: its full type name, the schema version and its bytes. */
export function toEventRecord(message: Message): EventRecord {
  const desc = events.getMessage(message.$typeName);
  if (desc === undefined) throw new Error(`${message.$typeName} is not a marketplace event`);
  return { type: message.$typeName, schemaVersion, payload: toBinary(desc, message) };
}

/** Reads a stored event back as its message. Throws on a type or schema version this code does not know. */
export function fromEventRecord(record: EventRecord): Message {
  const desc = events.getMessage(record.type);
  if (desc === undefined) throw new Error(`unknown marketplace event type ${record.type}`);
  if (record.schemaVersion !== schemaVersion) {
    throw new Error(`event ${record.type} has schema version ${record.schemaVersion}; this code reads ${schemaVersion}`);
  }
  return fromBinary(desc, record.payload);
}
