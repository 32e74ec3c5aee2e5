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

/**
 * The record's bytes in the stream: JSON, for anyone reading the stream without this code. Written as text,
 * byte for byte what `JSON.stringify` writes of the fields in this order, because every command writes one and
 * building an object to stringify cost more (measured: 0.8 to 1.4 µs against 0.55 to 0.65 µs).
 */
export function encodeRecord(record: CommandRecord): Uint8Array {
  const head = `{"fingerprint":${JSON.stringify(record.fingerprint)},"commits":${record.commits}`;
  return Buffer.from(record.commits === 0 ? `${head},"version":${record.version},"position":${record.position}}` : `${head}}`);
}

/** Reads a record that {@link encodeRecord} wrote; throws on anything else. */
export function decodeRecord(data: Uint8Array): CommandRecord {
  const body = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8")) as Partial<CommandRecord>;
  if (typeof body.fingerprint !== "string" || typeof body.commits !== "number") {
    throw new Error("a command record without a fingerprint or a count of commits");
  }
  return { fingerprint: body.fingerprint, commits: body.commits, version: body.version ?? 0, position: body.position ?? 0 };
}
