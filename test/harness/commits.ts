import type { EventStore } from "../../streams/event-store.js";

/**
 * How many commits the stream holds after position `after`, up to `upTo` (default: its head). Positions count
 * the command records between commits too, so differences of positions are not numbers of commits.
 */
export async function commitsBetween(store: EventStore, after: number, upTo?: number): Promise<number> {
  let n = 0;
  for await (const commit of store.readAll({ fromSeq: after + 1, ...(upTo === undefined ? {} : { toSeq: upTo }) })) {
    if (commit.seq > after) n++;
  }
  return n;
}

/** The position of the last commit before position `seq`, 0 when there is none. */
export async function lastCommitBefore(store: EventStore, seq: number): Promise<number> {
  for (let at = seq - 1; at > 0; at--) if ((await store.readCommit(at)) !== undefined) return at;
  return 0;
}
