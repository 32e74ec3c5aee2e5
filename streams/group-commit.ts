import { JetStreamApiError } from "@nats-io/jetstream";
import type { BatchMessage, JsPublisher } from "./js-publisher.js";

/** One writer's atomic batch, as handed to {@link GroupCommit.commit}. */
export interface GroupMember {
  readonly messages: readonly BatchMessage[];
  /**
   * True when the member must be stored in an atomic batch of its own: a condition on a wildcard subject is
   * checked against the stream as it was before the batch, blind to what other members of a shared batch write.
   */
  readonly alone: boolean;
  /**
   * After a shared batch was refused: why this member's conditions fail (the error to reject it with), or
   * undefined when they hold. Sequences only grow, so a condition found failing then still fails.
   */
  readonly refusal: () => Promise<Error | undefined>;
}

/** Group commit: atomic batches of concurrent writers stored together, each still all or nothing. */
export interface GroupCommit {
  /**
   * Stores `member`'s messages atomically and consecutively, possibly in one atomic batch with other members
   * (never two that write the same subject); resolves with the stream sequence of its last message. Rejects as
   * {@link JsPublisher.publishBatch} does for its own batch; a refusal caused by another member never reaches it.
   */
  commit(member: GroupMember): Promise<number>;
}

/** API codes of a refused atomic batch: a stale condition, or a conditioned subject written twice. */
export const refusedCodes: ReadonlySet<number> = new Set([10071, 10164]);

interface Waiting {
  readonly member: GroupMember;
  readonly subjects: readonly string[];
  resolve(lastSeq: number): void;
  reject(err: unknown): void;
}

/**
 * Creates a group commit over `publisher`. While `maxInFlight` batches await their acknowledgement, members
 * queue; each acknowledgement sends the next batch with as many queued members as fit in `maxMessages`.
 *
 * Why: an atomic batch is one write of the stream under its lock and, on a file-backed stream of one replica,
 * one disk sync before the acknowledgement (measured on nats-server 2.15.1: about 5 ms, so about 200 batches a
 * second however many are sent at once). Sharing a batch shares that cost.
 *
 * A refused shared batch asks each member whether its own conditions fail, rejects those that do and sends the
 * others again; when none owns the refusal, each is sent alone.
 */
export function createGroupCommit(
  publisher: JsPublisher,
  options: { readonly maxInFlight?: number; readonly maxMessages?: number } = {},
): GroupCommit {
  const maxInFlight = options.maxInFlight ?? 2;
  const maxMessages = options.maxMessages ?? 1_000;
  let queue: Waiting[] = [];
  let inFlight = 0;
  let scheduled = false;

  /** Takes from the queue the next batch's members: the first one, and those after it that fit beside it. */
  const nextGroup = (): Waiting[] => {
    const first = queue[0];
    if (first === undefined) return [];
    if (first.member.alone) {
      queue = queue.slice(1);
      return [first];
    }
    const group: Waiting[] = [];
    const rest: Waiting[] = [];
    const subjects = new Set<string>();
    let messages = 0;
    for (const w of queue) {
      const fits =
        !w.member.alone &&
        messages + w.member.messages.length <= maxMessages &&
        w.subjects.every((s) => !subjects.has(s));
      if (!fits) {
        rest.push(w);
        continue;
      }
      group.push(w);
      messages += w.member.messages.length;
      for (const s of w.subjects) subjects.add(s);
    }
    queue = rest;
    return group;
  };

  const pump = (): void => {
    scheduled = false;
    while (inFlight < maxInFlight && queue.length > 0) {
      const group = nextGroup();
      inFlight++;
      void send(group).finally(() => {
        inFlight--;
        pump();
      });
    }
  };

  const send = async (group: Waiting[]): Promise<void> => {
    const messages = group.flatMap((w) => w.member.messages);
    let lastSeq: number;
    try {
      lastSeq = (await publisher.publishBatch(messages)).seq;
    } catch (err) {
      if (group.length === 1 || !(err instanceof JetStreamApiError) || !refusedCodes.has(err.code)) {
        for (const w of group) w.reject(err);
        return;
      }
      await sortOut(group);
      return;
    }
    // The members' messages are consecutive in the stream, in the batch's order.
    let seq = lastSeq - messages.length;
    for (const w of group) {
      seq += w.member.messages.length;
      w.resolve(seq);
    }
  };

  /** After a shared batch was refused: rejects the members that own the refusal, and queues the others again. */
  const sortOut = async (group: Waiting[]): Promise<void> => {
    const refusals = await Promise.all(group.map((w) => w.member.refusal().catch((err: unknown) => err)));
    const again = group.filter((w, i) => {
      const refusal = refusals[i];
      if (refusal !== undefined) w.reject(refusal);
      return refusal === undefined;
    });
    // Nobody's condition fails now (the refusal's cause cannot be told apart): each goes alone.
    const retry = again.length === group.length ? again.map((w) => ({ ...w, member: { ...w.member, alone: true } })) : again;
    queue = [...retry, ...queue];
  };

  return {
    commit(member) {
      return new Promise<number>((resolve, reject) => {
        queue.push({ member, subjects: member.messages.map((m) => m.subject), resolve, reject });
        // Members that arrive in this turn of the event loop go in the same batch.
        if (!scheduled && inFlight < maxInFlight) {
          scheduled = true;
          setImmediate(pump);
        }
      });
    },
  };
}
