/**
 * Refusals raised by `decide`. Callers branch on `kind`, never on message text; the message says precisely what
 * was wrong for the person reading it. Transport codes are assigned in one place outside the domain.
 */

/** The four ways a command is refused. */
export type DomainErrorKind = "InvalidCommand" | "NotFound" | "AlreadyExists" | "RuleViolation";

/** Base of every domain refusal; `kind` tells them apart. */
export abstract class DomainError extends Error {
  abstract readonly kind: DomainErrorKind;
}

/**
 * The command's own data is malformed or out of range, whatever the state (a bad royalty split, a non-positive
 * amount, an empty id). Retrying the same command can never succeed.
 */
export class InvalidCommand extends DomainError {
  readonly kind = "InvalidCommand";
  constructor(message: string) {
    super(message);
    this.name = "InvalidCommand";
  }
}

/** The command addresses an aggregate that does not exist (its stream has no creating event). */
export class NotFoundError extends DomainError {
  readonly kind = "NotFound";
  constructor(message: string) {
    super(message);
    this.name = "NotFoundError";
  }
}

/** A create command addresses an aggregate that already exists. */
export class AlreadyExistsError extends DomainError {
  readonly kind = "AlreadyExists";
  constructor(message: string) {
    super(message);
    this.name = "AlreadyExistsError";
  }
}

/**
 * A business rule refuses the command given the current state (not the owner, insufficient funds, burned).
 * The same command may succeed against another state.
 */
export class RuleViolation extends DomainError {
  readonly kind = "RuleViolation";
  constructor(message: string) {
    super(message);
    this.name = "RuleViolation";
  }
}
