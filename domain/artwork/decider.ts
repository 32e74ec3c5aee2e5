import type { Decider } from "../decider.js";
import { decide } from "./decide.js";
import { evolve, initialState } from "./evolve.js";
import type { ArtworkCommand, ArtworkEvent, ArtworkState } from "./types.js";

/**
 * The artwork aggregate (stream `ev.artwork.<artworkId>`): mint, change the royalty split, list, delist, transfer,
 * burn. The rules and the order they are checked in are documented on `decide` in `decide.ts`.
 */
export const artworkDecider: Decider<ArtworkCommand, ArtworkEvent, ArtworkState> = { initialState, evolve, decide };
