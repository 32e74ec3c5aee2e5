/**
 * Bounds for text that a caller sent and an error message repeats. An answer's message travels in a gRPC trailer,
 * an HTTP header that clients refuse beyond a few kilobytes (a 200 kB SQL statement echoed back made the stream
 * fail with FRAME_SIZE_ERROR instead of answering), so whatever comes from the request is cut short before it
 * goes into a message.
 */

/** The most characters of a caller's value {@link quoteInput} repeats. */
export const maxQuotedChars = 64;

/** The most characters of any error message sent to a caller (see {@link capMessage}). */
export const maxMessageChars = 1024;

/**
 * `value` as JSON text for an error message, cut after `max` characters (default {@link maxQuotedChars}) with an
 * ellipsis inside the quotes and its full length after them: `"2024-13"`, `"xxxxxxxx…" (200000 characters)`.
 */
export function quoteInput(value: string, max = maxQuotedChars): string {
  if (value.length <= max) return JSON.stringify(value);
  return `${JSON.stringify(`${cutAt(value, max)}…`)} (${value.length} characters)`;
}

/** `text` when it is at most `max` characters long (default {@link maxMessageChars}); else its head and how long it was. */
export function capMessage(text: string, max = maxMessageChars): string {
  if (text.length <= max) return text;
  return `${cutAt(text, max)}… (cut at ${max} of ${text.length} characters)`;
}

/** The first `max` UTF-16 units of `text`, one fewer when the cut would split a surrogate pair. */
function cutAt(text: string, max: number): string {
  const last = text.charCodeAt(max - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}
