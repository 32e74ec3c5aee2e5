import { expect } from "vitest";
import type { Decider } from "../decider.js";

/** A class of error `thenThrows` expects, abstract or not. */
export type ErrorClass = abstract new (...args: never[]) => Error;

/** The start of a scenario: the events already in the aggregate's stream. */
export interface Given<C, E, S> {
  /** Folds `events` from the decider's initial state; the scenario then runs `command` against that state. */
  when(command: C): Then<E, S>;
}

/** The assertions that end a scenario. Each one fails the current vitest test when it does not hold. */
export interface Then<E, S> {
  /** `decide` returns exactly these events (deep, strict equality: no extra or undefined fields). */
  then(expected: readonly E[]): void;
  /** `decide` returns `[]`: the command is an idempotent no-op. */
  thenNothing(): void;
  /** `decide` throws an instance of `errorClass` whose message matches `message` (a regexp, or a substring). */
  thenThrows(errorClass: ErrorClass, message?: RegExp | string): void;
  /** Folding the given events and then the decided ones yields exactly `expected`. */
  thenState(expected: S): void;
}

/** What `scenario` returns; `given` is a plain function property, so it may be destructured. */
export interface Scenario<C, E, S> {
  readonly given: (events: readonly E[]) => Given<C, E, S>;
}

/**
 * Given/when/then tests over any decider:
 * `const { given } = scenario(walletDecider);`
 * `given([opened("u-1"), deposited(100n)]).when(withdraw(150n)).thenThrows(RuleViolation, /insufficient funds/)`.
 *
 * Events, command and every intermediate state are deep-frozen first, so a `decide` or `evolve` that mutates its
 * arguments fails the test with a TypeError.
 */
export function scenario<C, E, S>(decider: Decider<C, E, S>): Scenario<C, E, S> {
  const fold = (state: S, events: readonly E[]): S =>
    events.reduce((current, event) => deepFreeze(decider.evolve(current, deepFreeze(event))), state);

  return {
    given: (events) => {
      return {
        when(command) {
          const state = fold(deepFreeze(decider.initialState), events);
          const decide = (): E[] => decider.decide(deepFreeze(command), state);
          return {
            then(expected) {
              // A scenario returned from a test without an assertion is a thenable that vitest would await, calling
              // this with a function: say so instead of failing on a confusing comparison.
              if (!Array.isArray(expected)) {
                throw new TypeError("a given/when scenario was left without an assertion: end it with then…()");
              }
              expect(decide()).toStrictEqual(expected);
            },
            thenNothing() {
              expect(decide()).toStrictEqual([]);
            },
            thenThrows(errorClass, message) {
              let thrown: unknown;
              let events: E[] | undefined;
              try {
                events = decide();
              } catch (error) {
                thrown = error;
              }
              expect(thrown, `decide returned ${describe(events)} instead of throwing`).toBeInstanceOf(errorClass);
              if (message !== undefined) expect((thrown as Error).message).toMatch(message);
            },
            thenState(expected) {
              expect(fold(state, decide())).toStrictEqual(expected);
            },
          };
        },
      };
    },
  };
}

function describe(value: unknown): string {
  if (value === undefined) return "undefined";
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? `${v.toString()}n` : v));
}

// Domain data is acyclic plain data, so the walk ends; it revisits frozen objects because their children may not be.
function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
