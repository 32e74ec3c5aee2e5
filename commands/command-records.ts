/**
 * What the event stream remembers of a command id: its record, on `cmd.<command id>`, stored in the same atomic
 * batch as the command's commits (which follow it immediately) on condition that the id has none yet. A repeat
 * of the id reads it and answers what the first execution answered; a command that changed nothing stores its
 * record alone, with the answer it gave.
 */
export interface CommandRecord {
  /** Identifies the request: a repeat must carry the same fingerprint. */
  readonly fingerprint: string;
  /** How many commits follow the record in its batch; 0 for a command that changed nothing. */
  readonly commits: number;
  /** For a command that changed nothing: the aggregate's version and position it answered (0 otherwise). */
  readonly version: number;
  readonly position: number;
}

/** The record's bytes in the stream: JSON, for anyone reading the stream without this code. */
export function encodeRecord(record: CommandRecord): Uint8Array {
  const body: Record<string, unknown> = { fingerprint: record.fingerprint, commits: record.commits };
  if (record.commits === 0) Object.assign(body, { version: record.version, position: record.position });
  return Buffer.from(JSON.stringify(body));
}

/** Reads a record that {@link encodeRecord} wrote; throws on anything else. */
export function decodeRecord(data: Uint8Array): CommandRecord {
  const body = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8")) as Partial<CommandRecord>;
  if (typeof body.fingerprint !== "string" || typeof body.commits !== "number") {
    throw new Error("a command record without a fingerprint or a count of commits");
  }
  return { fingerprint: body.fingerprint, commits: body.commits, version: body.version ?? 0, position: body.position ?? 0 };
}
