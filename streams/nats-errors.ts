import { JetStreamApiError, JetStreamError } from "@nats-io/jetstream";
import { jserrors } from "@nats-io/jetstream/internal";
import {
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  RequestError,
  TimeoutError,
} from "@nats-io/transport-node";
import { UnavailableError } from "./errors.js";

/** JetStream API codes that mean "try again later" rather than "you asked for something wrong". */
const transientApiCodes = new Set([
  10008, // JetStream system temporarily unavailable (a cluster without a meta leader)
  10176, // an atomic batch arrived incomplete (a message lost on the way): nothing of it was stored
  10210, // too many atomic batches in flight on the stream: nothing of this one was stored
]);

/**
 * Turns the client's ways of saying "NATS did not answer" (a timeout, a closed or draining connection, no
 * responders, a transient JetStream status) into an UnavailableError naming the operation; returns any other
 * error unchanged. Errors are told apart by class and API code, never by message text.
 */
export function unavailableOr(err: unknown, operation: string): unknown {
  const transient =
    err instanceof TimeoutError ||
    err instanceof ClosedConnectionError ||
    err instanceof DrainingConnectionError ||
    err instanceof ConnectionError ||
    err instanceof NoRespondersError ||
    err instanceof RequestError ||
    err instanceof jserrors.JetStreamNotEnabled ||
    (err instanceof JetStreamApiError && (transientApiCodes.has(err.code) || err.status === 503)) ||
    (err instanceof JetStreamError && err.cause instanceof TimeoutError);
  return transient ? new UnavailableError(`NATS did not answer ${operation}`, { cause: err }) : err;
}
