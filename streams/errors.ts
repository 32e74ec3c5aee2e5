/**
 * Errors raised by the event store and its plumbing. Each has a readonly `kind` discriminant so callers
 * branch on the kind, never on message text; transport codes are assigned elsewhere, in one place.
 */

/**
 * An append's expected subject sequence did not match the subject's last sequence (JetStream API code 10071).
 * For an atomic batch, `part` is the index of the commit whose condition failed, `subject` its subject (or the
 * subject its condition was on); nothing of the batch was stored.
 */
export class ConcurrencyError extends Error {
  readonly kind = "concurrency";
  readonly part: number;
  constructor(
    readonly subject: string,
    readonly expectedSeq: number,
    options?: ErrorOptions & { readonly part?: number },
  ) {
    super(`${subject} has moved past sequence ${expectedSeq}`, options);
    this.name = "ConcurrencyError";
    this.part = options?.part ?? 0;
  }
}

/** An atomic batch carried the record of a command id that the stream already holds: nothing was stored. */
export class RecordExistsError extends Error {
  readonly kind = "record-exists";
  constructor(
    readonly commandId: string,
    options?: ErrorOptions,
  ) {
    super(`command ${commandId} already has a record`, options);
    this.name = "RecordExistsError";
  }
}

/** NATS did not answer within the configured bound: the server is down, unreachable or overloaded. */
export class UnavailableError extends Error {
  readonly kind = "unavailable";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UnavailableError";
  }
}

/** The deployed streams or buckets differ from the declared topology in a way that cannot be changed in place. */
export class TopologyError extends Error {
  readonly kind = "topology";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TopologyError";
  }
}

/** The server or the stream lacks a capability foldline relies on; start-up stops rather than run unsafely. */
export class CapabilityError extends Error {
  readonly kind = "capability";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CapabilityError";
  }
}

/** A caller passed something the store cannot accept (a subject outside the stream, an empty commit). */
export class InvalidAppendError extends Error {
  readonly kind = "invalid-append";
  constructor(message: string) {
    super(message);
    this.name = "InvalidAppendError";
  }
}
