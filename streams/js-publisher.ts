import { JetStreamApiError } from "@nats-io/jetstream";
import {
  createInbox,
  headers,
  MsgHdrsImpl,
  nuid,
  type MsgHdrs,
  type Msg,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import { UnavailableError } from "./errors.js";
import { unavailableOr } from "./nats-errors.js";
import { publishTurn } from "./publish-turn.js";

/** The server's acknowledgement of a stored message. */
export interface PubAck {
  readonly stream: string;
  /** The message's stream sequence; for a duplicate, the sequence of the original. */
  readonly seq: number;
  /** The message id was seen inside the duplicate window: nothing was stored. */
  readonly duplicate: boolean;
  /** For an atomic batch: how many messages it stored, the last at `seq` and the others just before it. */
  readonly count?: number;
}

/** Guards of one publish. */
export interface PublishGuards {
  /** `Nats-Msg-Id`: the server stores the message once per duplicate window. */
  readonly msgId?: string;
  /** `Nats-Expected-Last-Subject-Sequence`: refused with API code 10071 unless the subject's last message has it. */
  readonly expectedLastSubjectSeq?: number;
  /**
   * `Nats-Expected-Last-Subject-Sequence-Subject`: with `expectedLastSubjectSeq`, the condition is on the last
   * message of this subject (wildcards allowed) instead of the message's own subject.
   */
  readonly expectedLastSubjectSeqSubject?: string;
}

/** One message of an atomic batch. */
export interface BatchMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly guards?: PublishGuards;
}

/** Publishes to JetStream and waits for the acknowledgement. */
export interface JsPublisher {
  /**
   * Publishes `data` to `subject` and resolves with the server's acknowledgement. Rejects with a
   * JetStreamApiError when the server refuses (10071 for a failed sequence guard), with UnavailableError when
   * no acknowledgement comes within the timeout, no stream takes the subject or the connection closes.
   */
  publish(subject: string, data: Uint8Array, guards?: PublishGuards): Promise<PubAck>;
  /**
   * Publishes `messages` as one atomic batch (a stream with `allow_atomic`, nats-server 2.12+): the server
   * stores all of them, consecutively and in order, or none, and checks every message's guards against the
   * stream as it was before the batch. One acknowledgement answers the whole batch (its `seq` is the last
   * message's); the messages leave in one socket write with no reply but the commit's, so a batch costs one
   * round trip. Rejects like {@link JsPublisher.publish}: with the server's JetStreamApiError when it refuses
   * the batch (10071 when any guard failed), UnavailableError when no answer comes in time.
   */
  publishBatch(messages: readonly BatchMessage[]): Promise<PubAck>;
  /** Stops listening; publishes still waiting are rejected with UnavailableError. */
  close(): void;
}

interface Waiting {
  readonly subject: string;
  readonly deadline: number;
  resolve(ack: PubAck): void;
  reject(err: unknown): void;
}

/**
 * Creates a publisher for the hot path, doing what `JetStreamClient.publish` does for one message with far less
 * work per call. The client's request machinery costs a timer, a request object and an Error with a captured
 * stack trace for every *successful* request (it rejects an internal promise on completion), which on a busy
 * command server was a fifth of the CPU. Here, one wildcard subscription receives every acknowledgement, a
 * map finds the waiting caller, and one coarse timer expires the late ones. Single publishes made in one
 * event-loop turn leave in one socket write ({@link publishTurn}); an atomic batch leaves at once, its messages
 * together.
 */
export function createJsPublisher(nc: NatsConnection, timeoutMs: number): JsPublisher {
  const prefix = createInbox();
  const waiting = new Map<string, Waiting>();
  let next = 0;
  let closed = false;

  const settle = (id: string, msg: Msg): void => {
    const w = waiting.get(id);
    if (w === undefined) return; // late: already expired
    waiting.delete(id);
    if (msg.headers?.code === 503) {
      w.reject(new UnavailableError(`no JetStream stream answered a publish to ${w.subject}`));
      return;
    }
    let body: { stream?: string; seq?: number; duplicate?: boolean; count?: number; error?: { code: number; err_code: number; description: string } };
    try {
      body = msg.json();
    } catch (err) {
      w.reject(new UnavailableError(`an unreadable acknowledgement came for a publish to ${w.subject}`, { cause: err }));
      return;
    }
    if (body.error !== undefined) {
      w.reject(new JetStreamApiError(body.error));
      return;
    }
    w.resolve({
      stream: body.stream ?? "",
      seq: body.seq ?? 0,
      duplicate: body.duplicate === true,
      ...(body.count === undefined ? {} : { count: body.count }),
    });
  };

  const sub: Subscription = nc.subscribe(`${prefix}.*`, {
    callback: (err, msg) => {
      if (err !== null) return; // the subscription is closing; `closed` below rejects the waiting
      settle(msg.subject.slice(prefix.length + 1), msg);
    },
  });
  const rejectAll = (reason: string): void => {
    for (const [id, w] of waiting) {
      waiting.delete(id);
      w.reject(new UnavailableError(`${reason}: a publish to ${w.subject} is unanswered`));
    }
  };
  void sub.closed.then(() => {
    closed = true;
    rejectAll("the NATS connection closed");
  });
  // One timer for all: a publish expires between `timeoutMs` and `timeoutMs` plus a tick after it was sent.
  const tickMs = Math.max(20, Math.floor(timeoutMs / 10));
  const sweeper = setInterval(() => {
    const now = performance.now();
    for (const [id, w] of waiting) {
      if (w.deadline > now) continue;
      waiting.delete(id);
      w.reject(new UnavailableError(`NATS did not acknowledge a publish to ${w.subject} within ${timeoutMs} ms`));
    }
  }, tickMs);
  sweeper.unref();

  /**
   * Sends `messages` together, the last with the reply subject the answer comes back on: in this turn's socket
   * write when `turn`, else at once.
   */
  const send = async (
    what: string,
    messages: readonly { readonly subject: string; readonly data: Uint8Array; readonly headers: MsgHdrs }[],
    turn: boolean,
  ): Promise<PubAck> => {
    if (closed) throw new UnavailableError(`the NATS connection closed: cannot publish to ${what}`);
    if (turn) await publishTurn();
    const id = (next++).toString(36);
    return new Promise<PubAck>((resolve, reject) => {
      waiting.set(id, { subject: what, deadline: performance.now() + timeoutMs, resolve, reject });
      try {
        const lastIndex = messages.length - 1;
        messages.forEach((m, i) => {
          nc.publish(m.subject, m.data, i === lastIndex ? { reply: `${prefix}.${id}`, headers: m.headers } : { headers: m.headers });
        });
      } catch (err) {
        waiting.delete(id);
        const failure = unavailableOr(err, `a publish to ${what}`);
        reject(failure instanceof Error ? failure : new Error(String(failure)));
      }
    });
  };

  return {
    async publish(subject, data, guards = {}) {
      return send(subject, [{ subject, data, headers: guardHeaders(guards) }], true);
    },

    async publishBatch(messages) {
      const last = messages.at(-1);
      if (last === undefined) throw new RangeError("an atomic batch needs at least one message");
      const batchId = nuid.next();
      const lastIndex = messages.length - 1;
      // A batch's messages already leave in one write: holding them for the end of the turn (publishTurn) would
      // only delay a batch the group commit sends at the end of a turn, or as soon as one in flight is answered,
      // by a turn of a busy event loop (measured: 20 ms against 25 to 30 ms from send to acknowledgement, 256
      // commands in flight through the pipeline alone).
      return send(last.subject, messages.map((m, i) => ({
        subject: m.subject,
        data: m.data,
        headers: batchHeaders(m.guards, batchId, i + 1, i === lastIndex),
      })), false);
    },

    close() {
      clearInterval(sweeper);
      sub.unsubscribe();
      closed = true;
      rejectAll("the publisher closed");
    },
  };
}

function guardHeaders(guards: PublishGuards): MsgHdrs {
  const h = headers();
  if (guards.msgId !== undefined) h.set("Nats-Msg-Id", guards.msgId);
  if (guards.expectedLastSubjectSeq !== undefined) {
    h.set("Nats-Expected-Last-Subject-Sequence", String(guards.expectedLastSubjectSeq));
  }
  if (guards.expectedLastSubjectSeqSubject !== undefined) {
    h.set("Nats-Expected-Last-Subject-Sequence-Subject", guards.expectedLastSubjectSeqSubject);
  }
  return h;
}

/**
 * Headers already encoded: `publish` only calls `encode()` on the headers it is given. A batch message's headers
 * are written as text directly, because `MsgHdrsImpl.set` canonicalizes every key and `encode` rebuilds the text
 * through a TextEncoder: measured on the 2-core bench machine, 11 µs for a command's two messages (record and
 * commit, four headers each) against 2.3 µs written directly.
 */
class EncodedHeaders extends MsgHdrsImpl {
  constructor(private readonly bytes: Uint8Array) {
    super();
  }
  override encode(): Uint8Array {
    return this.bytes;
  }
}

/**
 * The headers of message `seq` (from 1) of an atomic batch, its guards and then the batch's own, encoded as
 * `headers()` would encode them (string values checked and trimmed as its `set` does). Exported for its spec.
 */
export function batchHeaders(guards: PublishGuards | undefined, batchId: string, seq: number, commit: boolean): MsgHdrsImpl {
  let text = "NATS/1.0\r\n";
  if (guards?.msgId !== undefined) text += `Nats-Msg-Id: ${MsgHdrsImpl.validHeaderValue(guards.msgId)}\r\n`;
  if (guards?.expectedLastSubjectSeq !== undefined) {
    text += `Nats-Expected-Last-Subject-Sequence: ${guards.expectedLastSubjectSeq}\r\n`;
  }
  if (guards?.expectedLastSubjectSeqSubject !== undefined) {
    text += `Nats-Expected-Last-Subject-Sequence-Subject: ${MsgHdrsImpl.validHeaderValue(guards.expectedLastSubjectSeqSubject)}\r\n`;
  }
  text += `Nats-Batch-Id: ${batchId}\r\nNats-Batch-Sequence: ${seq}\r\n${commit ? "Nats-Batch-Commit: 1\r\n" : ""}\r\n`;
  return new EncodedHeaders(Buffer.from(text));
}
