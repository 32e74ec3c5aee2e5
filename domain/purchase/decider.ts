import type { Decider } from "../decider.js";
import { decide } from "./decide.js";
import { evolve, initialState } from "./evolve.js";
import type { PurchaseCommand, PurchaseEvent, PurchaseState } from "./types.js";

/**
 * The purchase aggregate (stream `ev.purchase.<purchaseId>`): the record of one purchase, started by the buyer and
 * advanced step by step by the purchase process manager. The rules are documented on `decide` in `decide.ts`.
 */
export const purchaseDecider: Decider<PurchaseCommand, PurchaseEvent, PurchaseState> = { initialState, evolve, decide };
