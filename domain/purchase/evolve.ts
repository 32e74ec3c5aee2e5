import type { PurchaseEvent, PurchaseStage, PurchaseState } from "./types.js";

/** The state of a purchase before its first event: not started. */
export const initialState: PurchaseState = { status: "Empty" };

/** The stage each recorded step leads to. */
export const stageAfter: Readonly<Record<Exclude<PurchaseEvent["type"], "PurchaseStarted">, PurchaseStage>> = {
  PurchaseFundsReserved: "FundsReserved",
  PurchasePayoutsQuoted: "PayoutsQuoted",
  PurchaseArtworkTaken: "ArtworkTaken",
  PurchaseCompleted: "Completed",
  PurchaseCompensating: "Compensating",
  PurchaseFailed: "Failed",
};

/**
 * Folds one purchase event into the state. Total and pure: it never throws and never mutates its arguments; an
 * event that does not fit the state (a step before the start, a second start) leaves the state unchanged.
 */
export function evolve(state: PurchaseState, event: PurchaseEvent): PurchaseState {
  if (event.type === "PurchaseStarted") {
    if (state.status !== "Empty") return state;
    const { artworkId, buyerId, buyerWalletId, priceCents } = event;
    return { status: "Started", artworkId, buyerId, buyerWalletId, priceCents, sellerId: null, payouts: [], reason: "" };
  }
  if (state.status === "Empty") return state;
  const stage = stageAfter[event.type];
  switch (event.type) {
    case "PurchasePayoutsQuoted":
    case "PurchaseArtworkTaken":
      return {
        ...state,
        status: stage,
        sellerId: event.sellerId,
        payouts: event.payouts.map(({ recipientId, amountCents, kind }) => ({ recipientId, amountCents, kind })),
      };
    case "PurchaseCompensating":
    case "PurchaseFailed":
      return { ...state, status: stage, reason: event.reason };
    default:
      return { ...state, status: stage };
  }
}
