import { describe, expect, it } from "vitest";
import type { Decider } from "../decider.js";
import { InvalidCommand, RuleViolation } from "../errors.js";
import { scenario } from "./given.js";

// A counter small enough that every outcome of the helper is easy to provoke.
type Command = { readonly type: "Add"; readonly by: number } | { readonly type: "Mutate" };
type Event = { readonly type: "Added"; readonly by: number };
interface State {
  readonly total: number;
  readonly log: number[];
}

const counter: Decider<Command, Event, State> = {
  initialState: { total: 0, log: [] },
  evolve: (state, event) => ({ total: state.total + event.by, log: [...state.log, event.by] }),
  decide: (command, state) => {
    if (command.type === "Mutate") {
      state.log.push(1);
      return [];
    }
    if (command.by < 0) throw new InvalidCommand(`cannot add ${command.by}`);
    return command.by === 0 ? [] : [{ type: "Added", by: command.by }];
  },
};

const { given } = scenario(counter);
const add = (by: number): Command => ({ type: "Add", by });
const added = (by: number): Event => ({ type: "Added", by });

describe("scenario", () => {
  it("passes when each assertion holds", () => {
    given([added(1)]).when(add(2)).then([added(2)]);
    given([added(1)]).when(add(0)).thenNothing();
    given([added(1)]).when(add(-1)).thenThrows(InvalidCommand, /cannot add -1/);
    given([added(1)]).when(add(2)).thenState({ total: 3, log: [1, 2] });
  });

  it("then fails on other events", () => {
    expect(() => {
      given([]).when(add(2)).then([added(3)]);
    }).toThrow();
  });

  it("then fails on an extra undefined field", () => {
    expect(() => {
      given([]).when(add(2)).then([{ type: "Added", by: 2, extra: undefined } as Event]);
    }).toThrow();
  });

  it("thenNothing fails when events are returned", () => {
    expect(() => {
      given([]).when(add(2)).thenNothing();
    }).toThrow();
  });

  it("thenThrows fails when nothing is thrown, naming what was returned", () => {
    expect(() => {
      given([]).when(add(2)).thenThrows(InvalidCommand);
    }).toThrow(/decide returned \[{"type":"Added","by":2}\] instead of throwing/);
  });

  it("thenThrows fails on another error class", () => {
    expect(() => {
      given([]).when(add(-1)).thenThrows(RuleViolation);
    }).toThrow();
  });

  it("thenThrows fails on another message", () => {
    expect(() => {
      given([]).when(add(-1)).thenThrows(InvalidCommand, "cannot add -2");
    }).toThrow();
  });

  it("thenState fails on another state", () => {
    expect(() => {
      given([added(1)]).when(add(2)).thenState({ total: 4, log: [1, 2] });
    }).toThrow();
  });

  it("catches a decide that mutates the state", () => {
    expect(() => {
      given([added(1)]).when({ type: "Mutate" }).thenNothing();
    }).toThrow(TypeError);
  });

  it("says so when a scenario is left without an assertion and awaited", async () => {
    await expect(Promise.resolve(given([]).when(add(1)))).rejects.toThrow(/left without an assertion/);
  });
});
