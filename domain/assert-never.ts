/**
 * Marks a branch the type checker proves unreachable, typically the `default` of a switch over a union's tag.
 * Adding a member to the union then fails compilation at every switch that does not handle it. Throws if reached
 * anyway at run time (a value from outside the type system), naming the value.
 */
export function assertNever(value: never): never {
  const text = JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
  throw new Error(`unexpected value: ${text}`);
}
