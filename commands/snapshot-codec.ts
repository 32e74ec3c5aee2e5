/**
 * Aggregate state as snapshot bytes: JSON in which every bigint is written as `{"$bigint":"<decimal>"}`. States
 * are plain data (the deciders promise that), so this round-trips them exactly.
 */

const bigintTag = "$bigint";

/** Encodes a plain-data state. Throws on values JSON cannot carry. */
export function encodeState(state: unknown): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify(state, (_key, value: unknown) =>
      typeof value === "bigint" ? { [bigintTag]: value.toString() } : value,
    ),
  );
}

/** Decodes what {@link encodeState} wrote. Throws on malformed bytes. */
export function decodeState(bytes: Uint8Array): unknown {
  return JSON.parse(new TextDecoder().decode(bytes), (_key, value: unknown) => {
    if (typeof value === "object" && value !== null && !Array.isArray(value)) {
      const keys = Object.keys(value);
      const tagged = (value as Record<string, unknown>)[bigintTag];
      if (keys.length === 1 && typeof tagged === "string") return BigInt(tagged);
    }
    return value;
  }) as unknown;
}
