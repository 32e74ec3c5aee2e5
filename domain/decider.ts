/**
 * A pure aggregate: the initial state before any event, a total fold of one event into the state, and a decision
 * that turns a command into the events it causes.
 *
 * Contract for implementations:
 * - `evolve` never throws and never mutates its arguments; an event that does not fit the state leaves it unchanged
 *   (it cannot happen when every stored event came from `decide`).
 * - `decide` never mutates its arguments; it returns `[]` for a command that changes nothing (an idempotent
 *   repeat) and throws a `DomainError` for a command it refuses.
 * - States are plain JSON-able data (objects, arrays, strings, numbers, booleans, null) plus bigint values: no
 *   Map, Set, class instances or `undefined` fields, because the engine snapshots them as JSON with tagged bigints.
 * - No I/O, clock or id generation: time and ids arrive inside the command.
 */
export interface Decider<C, E, S> {
  readonly initialState: S;
  evolve(state: S, event: E): S;
  decide(command: C, state: S): E[];
}
