import { InvalidRequest } from "./errors.js";

/**
 * Checks of request fields shared by every service. Each throws InvalidRequest naming the field and what it
 * accepts, so that a caller can fix the request from the message alone.
 */

const idPattern = /^[A-Za-z0-9_-]{1,64}$/;
// Canonical text form only (lower case), so that one UUID is one idempotency key.
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const nilUuid = "00000000-0000-0000-0000-000000000000";

/** An entity id: 1..64 characters of [A-Za-z0-9_-]. */
export function requireId(field: string, value: string): string {
  if (!idPattern.test(value)) {
    throw new InvalidRequest(
      value === "" ? `${field} is required` : `${field} must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'`,
    );
  }
  return value;
}

/** Free text of 1..`max` characters, counted as Unicode code points (`min` 0 allows it empty). */
export function requireText(field: string, value: string, max: number, min = 1): string {
  if (value.length < min) throw new InvalidRequest(`${field} is required`);
  // A UTF-16 length within the bound is within it in code points too; count those only when it matters.
  if (value.length > max) {
    // Code points, as protovalidate counts a string's length; a string iterates by code point.
    const length = Array.from(value).length;
    if (length > max) throw new InvalidRequest(`${field} is ${length} characters long; at most ${max} are allowed`);
  }
  return value;
}

/** A positive amount of minor units (int64 on the wire). */
export function requirePositive(field: string, value: bigint): bigint {
  if (value <= 0n) throw new InvalidRequest(`${field} must be greater than 0, got ${value}`);
  return value;
}

/** At most `max` elements. */
export function requireAtMost<T>(field: string, values: readonly T[], max: number): readonly T[] {
  if (values.length > max) throw new InvalidRequest(`${field} has ${values.length} entries; at most ${max} are allowed`);
  return values;
}

/** What every command request carries besides its own fields. */
export interface CommandMetadataFields {
  readonly commandId: string;
  readonly expectedVersion?: number;
  readonly actor: string;
  readonly correlationId: string;
  readonly causationId: string;
}

/** The wire form of the metadata (as generated from `CommandMetadata`). */
export interface CommandMetadataMessage {
  readonly commandId: string;
  readonly expectedVersion?: bigint | undefined;
  readonly correlationId: string;
  readonly causationId: string;
  readonly actor: string;
}

/** Validates a request's metadata: a canonical UUID command id, an expected version and bounded texts. */
export function requireMetadata(metadata: CommandMetadataMessage | undefined): CommandMetadataFields {
  if (metadata === undefined) throw new InvalidRequest("metadata is required (it carries the command id)");
  const { commandId } = metadata;
  if (commandId === "") throw new InvalidRequest("metadata.command_id is required");
  if (!uuidPattern.test(commandId) || commandId === nilUuid) {
    throw new InvalidRequest(
      "metadata.command_id must be a UUID in canonical lower-case form, such as 0b7f2f0e-4a37-4c1e-9d55-0f3a2d1c9b8e, and not the nil UUID",
    );
  }
  const fields = {
    commandId,
    actor: requireText("metadata.actor", metadata.actor, 128, 0),
    correlationId: requireText("metadata.correlation_id", metadata.correlationId, 128, 0),
    causationId: requireText("metadata.causation_id", metadata.causationId, 128, 0),
  };
  if (metadata.expectedVersion === undefined) return fields;
  if (metadata.expectedVersion > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidRequest(`metadata.expected_version ${metadata.expectedVersion} is beyond any aggregate's version`);
  }
  return { ...fields, expectedVersion: Number(metadata.expectedVersion) };
}
