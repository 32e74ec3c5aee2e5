import type { Payout } from "../artwork/types.js";

/**
 * What may be asked of a purchase (stream `ev.purchase.<purchaseId>`). `CompletePurchase` records a purchase made
 * in one atomic command (see `buyArtwork`): started, artwork taken and completed in one commit. A purchase made
 * step by step (started by an earlier foldline) is advanced by the purchase process manager, which records each
 * step's outcome with `RecordStep`, whose event must follow from the current state.
 */
export type PurchaseCommand =
  | ({ readonly type: "CompletePurchase"; readonly purchaseId: string; readonly sellerId: string; readonly payouts: readonly Payout[] } & PurchaseTerms)
  | {
      readonly type: "StartPurchase";
      readonly purchaseId: string;
      readonly artworkId: string;
      readonly buyerId: string;
      readonly buyerWalletId: string;
      readonly priceCents: bigint;
    }
  | { readonly type: "RecordStep"; readonly purchaseId: string; readonly event: PurchaseStep };

/** What a buyer asks for: an artwork at a price, paid from a wallet. */
export interface PurchaseTerms {
  readonly artworkId: string;
  readonly buyerId: string;
  readonly buyerWalletId: string;
  readonly priceCents: bigint;
}

/** The events the process manager records, each the outcome of one step. */
export type PurchaseStep = Exclude<PurchaseEvent, { type: "PurchaseStarted" }>;

/**
 * What happened to a purchase. STORAGE CONTRACT: these events are persisted and replayed forever; rename or
 * retype nothing, add only optional data, and keep the proto messages that carry them in step.
 *
 * The life of a purchase: Started → FundsReserved → PayoutsQuoted (→ PayoutsQuoted again when the artwork changed
 * hands or split before it could be taken) → ArtworkTaken → Completed; Started → Failed
 * (the price could not be reserved); FundsReserved → Compensating → Failed (the artwork is not for sale to the
 * buyer at the price); PayoutsQuoted → Compensating → Failed (a payee's wallet has no room for its payout, or the
 * artwork could not be taken; the room made in the payees' wallets and the reservation are given back in between).
 */
export type PurchaseEvent =
  | {
      readonly type: "PurchaseStarted";
      readonly artworkId: string;
      readonly buyerId: string;
      readonly buyerWalletId: string;
      readonly priceCents: bigint;
    }
  | { readonly type: "PurchaseFundsReserved" }
  /**
   * The payouts a sale of the artwork would make (see `quoteSale`), recorded before any room is made for them in the
   * payees' wallets so that every attempt makes room for, and gives back, the same ones. A later quote replaces
   * the payouts; the room made for earlier ones is given back when the purchase ends.
   */
  | { readonly type: "PurchasePayoutsQuoted"; readonly sellerId: string; readonly payouts: readonly Payout[] }
  | { readonly type: "PurchaseArtworkTaken"; readonly sellerId: string; readonly payouts: readonly Payout[] }
  | { readonly type: "PurchaseCompleted" }
  | { readonly type: "PurchaseCompensating"; readonly reason: string }
  | { readonly type: "PurchaseFailed"; readonly reason: string };

/** Where a purchase stands; `Completed` and `Failed` are final. */
export type PurchaseStage =
  | "Started"
  | "FundsReserved"
  | "PayoutsQuoted"
  | "ArtworkTaken"
  | "Completed"
  | "Compensating"
  | "Failed";

/** A purchase folded from its events. Plain JSON-able data plus bigints. */
export type PurchaseState =
  | { readonly status: "Empty" }
  | {
      readonly status: PurchaseStage;
      readonly artworkId: string;
      readonly buyerId: string;
      readonly buyerWalletId: string;
      readonly priceCents: bigint;
      /** Set once the sale is quoted: the quote's, then the sale's (whose payouts are the quoted ones). */
      readonly sellerId: string | null;
      /** The quoted payouts; room was made for them in the payees' wallets from PayoutsQuoted on. */
      readonly payouts: readonly Payout[];
      /** Why it is compensating or failed; empty otherwise. */
      readonly reason: string;
    };
