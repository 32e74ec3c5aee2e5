/**
 * A position in protobuf bytes for decoders' fast paths: they read the layout their encoder writes (short
 * varints, ASCII strings, fields in a known order) without a reader object, tag tuples or a UTF-8 decoder, and
 * hand anything else to protobuf-es's reader. Every read returns -1 or undefined where the bytes leave that
 * layout, never a value the general reader would read differently.
 */
export class WireCursor {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}

  /** A varint of at most `maxBytes` bytes, ending before `limit`, or -1. Up to 7 bytes, the value is exact. */
  varint(maxBytes: number, limit: number): number {
    const { bytes } = this;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < maxBytes && this.pos < limit; i++) {
      const b = bytes[this.pos++] ?? 0;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 0x80;
    }
    return -1;
  }

  /** Reads a length (5 bytes at most); returns where the field it measures ends, or -1 past `limit`. */
  end(limit: number): number {
    const length = this.varint(5, limit);
    if (length < 0 || this.pos + length > limit) return -1;
    return this.pos + length;
  }

  /** A length-delimited ASCII string ending before `limit`, moving past it; undefined otherwise. */
  ascii(limit: number): string | undefined {
    const textEnd = this.end(limit);
    if (textEnd < 0) return undefined;
    const { bytes } = this;
    for (let i = this.pos; i < textEnd; i++) if ((bytes[i] ?? 0) > 0x7f) return undefined;
    const text = asciiText(bytes, this.pos, textEnd);
    this.pos = textEnd;
    return text;
  }

  /** Length-delimited bytes ending before `limit`, as a view, moving past them; undefined otherwise. */
  view(limit: number): Uint8Array | undefined {
    const viewEnd = this.end(limit);
    if (viewEnd < 0) return undefined;
    const view = this.bytes.subarray(this.pos, viewEnd);
    this.pos = viewEnd;
    return view;
  }

  /** Moves past `tag` when it comes next before `limit`. */
  next(tag: number, limit: number): boolean {
    if (this.pos >= limit || this.bytes[this.pos] !== tag) return false;
    this.pos++;
    return true;
  }
}

/**
 * ASCII bytes as a string. For ASCII, Latin-1 and UTF-8 read the same, and Buffer's own Latin-1 reader (the one
 * `buffer.toString("latin1")` ends in, which takes any Uint8Array, as NATS's message data are) made rebuilds about
 * a seventh faster than a TextDecoder (measured). Should a Node version lack it, the TextDecoder reads the same.
 */
const latin1Slice = (Buffer.prototype as Partial<{ latin1Slice(this: Uint8Array, start: number, end: number): string }>).latin1Slice;
const utf8 = new TextDecoder();
function asciiText(bytes: Uint8Array, start: number, end: number): string {
  return latin1Slice === undefined ? utf8.decode(bytes.subarray(start, end)) : latin1Slice.call(bytes, start, end);
}
