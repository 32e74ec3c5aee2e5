import type { Decider } from "../decider.js";
import { decide } from "./decide.js";
import { evolve, initialState } from "./evolve.js";
import type { WalletCommand, WalletEvent, WalletState } from "./types.js";

/**
 * The wallet aggregate (stream `ev.wallet.<walletId>`): open, deposit, withdraw, and reserve funds for a purchase,
 * then release or settle the reservation exactly once; receive a purchase's payment, for which the purchase makes
 * room first. The rules and the order they are checked in are documented on `decide` in `decide.ts`.
 */
export const walletDecider: Decider<WalletCommand, WalletEvent, WalletState> = { initialState, evolve, decide };
