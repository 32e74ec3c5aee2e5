import type { Decider } from "../domain/decider.js";
import type { EventRecord } from "../streams/commit-codec.js";

/**
 * Everything the command pipeline needs to know about one kind of aggregate: where its commits live, how it
 * decides, and how its events are stored. The pipeline names no domain concept; a domain plugs in here.
 */
export interface AggregateType<C, E, S> {
  /**
   * The aggregate kind's subject token: commits go to `ev.<name>.<aggregate id>` and snapshots to the key
   * `<name>.<aggregate id>`. Lower-case letters, digits and '-'.
   */
  readonly name: string;
  readonly decider: Decider<C, E, S>;
  /** The storage form of an event. Must be lossless: `decodeEvent(encodeEvent(e))` equals `e`. */
  encodeEvent(event: E): EventRecord;
  /** Reads an event back; throws on a type or schema version it does not know. */
  decodeEvent(record: EventRecord): E;
}
