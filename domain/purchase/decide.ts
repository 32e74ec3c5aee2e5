import { assertNever } from "../assert-never.js";
import { samePayouts } from "../artwork/payouts.js";
import { AlreadyExistsError, InvalidCommand, NotFoundError, RuleViolation } from "../errors.js";
import type { PurchaseCommand, PurchaseEvent, PurchaseStage, PurchaseState, PurchaseStep } from "./types.js";

/** The steps that may follow each stage. */
const nextSteps: Readonly<Record<PurchaseStage, readonly PurchaseStep["type"][]>> = {
  Started: ["PurchaseFundsReserved", "PurchaseFailed"],
  FundsReserved: ["PurchasePayoutsQuoted", "PurchaseCompensating"],
  PayoutsQuoted: ["PurchasePayoutsQuoted", "PurchaseArtworkTaken", "PurchaseCompensating"],
  ArtworkTaken: ["PurchaseCompleted"],
  Compensating: ["PurchaseFailed"],
  Completed: [],
  Failed: [],
};

/**
 * Decides what a purchase command causes. Pure.
 *
 * - `CompletePurchase`: `AlreadyExistsError` when the purchase exists, `InvalidCommand` as for `StartPurchase` or
 *   for an empty seller id; otherwise `PurchaseStarted`, `PurchaseArtworkTaken` with the seller and payouts, and
 *   `PurchaseCompleted`.
 * - `StartPurchase`: `AlreadyExistsError` when the purchase exists; `InvalidCommand` for an empty id or a
 *   non-positive price; otherwise `PurchaseStarted`.
 * - `RecordStep`: `NotFoundError` before the start; `RuleViolation` when the step does not follow the current
 *   stage (see the life of a purchase on `PurchaseEvent`), or when the artwork is recorded taken with payouts
 *   other than the quoted ones (room was made for those only); otherwise the step itself.
 */
export function decide(command: PurchaseCommand, state: PurchaseState): PurchaseEvent[] {
  switch (command.type) {
    case "StartPurchase":
      return [started(command, state)];
    case "CompletePurchase": {
      const start = started(command, state);
      const { sellerId, payouts } = command;
      if (sellerId === "") throw new InvalidCommand(`purchase ${command.purchaseId} needs a seller`);
      const plain = payouts.map(({ recipientId, amountCents, kind }) => ({ recipientId, amountCents, kind }));
      return [start, { type: "PurchaseArtworkTaken", sellerId, payouts: plain }, { type: "PurchaseCompleted" }];
    }
    case "RecordStep": {
      if (state.status === "Empty") throw new NotFoundError(`purchase ${command.purchaseId} does not exist`);
      if (!nextSteps[state.status].includes(command.event.type)) {
        throw new RuleViolation(
          `purchase ${command.purchaseId} is ${state.status}; ${command.event.type} cannot follow`,
        );
      }
      const step = command.event;
      if (step.type === "PurchaseArtworkTaken" && !samePayouts(step.payouts, state.payouts)) {
        throw new RuleViolation(
          `purchase ${command.purchaseId} made room for the payouts it quoted; the artwork was taken with others`,
        );
      }
      return [step];
    }
    default:
      return assertNever(command);
  }
}

/** The start of a new purchase, or the refusal: the id is used, or the terms are incomplete. */
function started(
  command: Extract<PurchaseCommand, { type: "StartPurchase" | "CompletePurchase" }>,
  state: PurchaseState,
): PurchaseEvent {
  if (state.status !== "Empty") throw new AlreadyExistsError(`purchase ${command.purchaseId} already exists`);
  const { artworkId, buyerId, buyerWalletId, priceCents } = command;
  if (artworkId === "" || buyerId === "" || buyerWalletId === "") {
    throw new InvalidCommand(`purchase ${command.purchaseId} needs an artwork, a buyer and a buyer's wallet`);
  }
  if (priceCents <= 0n) throw new InvalidCommand(`price must be positive; got ${priceCents} cents`);
  return { type: "PurchaseStarted", artworkId, buyerId, buyerWalletId, priceCents };
}
