/**
 * Errors of the command pipeline. Each has a readonly `kind`; the one place that turns them into transport
 * codes is `error-codes.ts`.
 */

/** The request is malformed: a missing or oversized field, a bad id. Nothing was read or written. */
export class InvalidRequest extends Error {
  readonly kind = "invalid-request";
  constructor(message: string) {
    super(message);
    this.name = "InvalidRequest";
  }
}

/** The caller's expected version is not the aggregate's version. Nothing was written. */
export class ExpectedVersionMismatch extends Error {
  readonly kind = "expected-version-mismatch";
  constructor(
    readonly aggregate: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`${aggregate} is at version ${actual}, not the expected ${expected}`);
    this.name = "ExpectedVersionMismatch";
  }
}

/** A command id was sent again with a different request. Nothing was written. */
export class CommandIdReused extends Error {
  readonly kind = "command-id-reused";
  constructor(readonly commandId: string) {
    super(`command id ${commandId} was already used for a different request`);
    this.name = "CommandIdReused";
  }
}

/** Other writers kept changing the aggregate; the command gave up after its retries. Nothing was written. */
export class CommandConflict extends Error {
  readonly kind = "command-conflict";
  constructor(aggregate: string, attempts: number) {
    super(`${aggregate} kept changing under concurrent writers; gave up after ${attempts} attempts, retry the command`);
    this.name = "CommandConflict";
  }
}

/** The server is shutting down and takes no new commands. */
export class ShuttingDown extends Error {
  readonly kind = "shutting-down";
  constructor() {
    super("the server is shutting down; retry on another instance");
    this.name = "ShuttingDown";
  }
}

/**
 * A request message that cannot be decoded as its RPC's request type: broken protobuf wire format (a truncated
 * field, a field with another wire type than its type has, invalid UTF-8 in a string, nesting too deep), JSON
 * that is not valid UTF-8 or names an unknown field, or a compressed message that does not decompress.
 * Nothing was read or written.
 */
export class UndecodableRequest extends Error {
  readonly kind = "undecodable-request";
  /**
   * @param typeName the request's message type
   * @param reason what is wrong, short and already bounded (it may quote the request)
   * @param index the message's place in a request stream (1 for the first); undefined for a unary request
   */
  constructor(typeName: string, reason: string, index?: number) {
    super(`request message${index === undefined ? "" : ` ${index}`} is not a valid ${typeName}: ${reason}`);
    this.name = "UndecodableRequest";
  }
}

/** A request for a path that names no method of any service served here. */
export class UnknownMethod extends Error {
  readonly kind = "unknown-method";
  /** @param path the request's path, already bounded */
  constructor(path: string) {
    super(`unknown method ${path}`);
    this.name = "UnknownMethod";
  }
}
