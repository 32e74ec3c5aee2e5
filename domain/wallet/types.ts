import type { PayoutKind } from "../artwork/types.js";

/** The largest balance a wallet may hold, in cents: the int64 maximum, which is what the wire and storage carry. */
export const maxBalanceCents = 9_223_372_036_854_775_807n;

/**
 * What a caller may ask of a wallet (stream `ev.wallet.<walletId>`). Amounts are bigint cents. A reservation
 * holds funds for a purchase under an id the caller chooses, so that retries are idempotent.
 */
export type WalletCommand =
  | { readonly type: "OpenWallet"; readonly walletId: string; readonly ownerId: string }
  | { readonly type: "Deposit"; readonly walletId: string; readonly amountCents: bigint }
  | { readonly type: "Withdraw"; readonly walletId: string; readonly amountCents: bigint }
  | {
      readonly type: "ReserveFunds";
      readonly walletId: string;
      readonly reservationId: string;
      readonly amountCents: bigint;
      /** Set by a purchase, whose id is then the reservation id: only that purchase may close it. */
      readonly purchaseId?: string;
    }
  | {
      readonly type: "ReleaseReservation";
      readonly walletId: string;
      readonly reservationId: string;
      /** The purchase closing its own reservation; absent for callers of WalletService. */
      readonly purchaseId?: string;
    }
  | {
      readonly type: "SettleReservation";
      readonly walletId: string;
      readonly reservationId: string;
      /** The purchase closing its own reservation; absent for callers of WalletService. */
      readonly purchaseId?: string;
    }
  | {
      /**
       * A purchase's payout to a party, whose wallet id is the party's id. Opens the wallet (owner = its id) when
       * it does not exist yet, so that a payout always has somewhere to go.
       */
      readonly type: "ReceivePayment";
      readonly walletId: string;
      readonly purchaseId: string;
      readonly artworkId: string;
      readonly amountCents: bigint;
      readonly kind: PayoutKind;
    }
  | {
      /**
       * A purchase making room for its payment to a party before it takes the artwork, so that the payment can
       * always be credited: the amount counts towards the balance ceiling until the payment arrives or the purchase
       * cancels it. Opens the wallet (owner = its id) when it does not exist yet, as the payment would.
       */
      readonly type: "ExpectPayment";
      readonly walletId: string;
      readonly purchaseId: string;
      readonly amountCents: bigint;
    }
  | {
      /** A purchase that failed giving back the room it made for its payment. */
      readonly type: "CancelExpectedPayment";
      readonly walletId: string;
      readonly purchaseId: string;
    };

/**
 * What happened to a wallet. STORAGE CONTRACT: these events are persisted and replayed forever; rename or retype
 * nothing, add only optional data, and keep the proto messages that carry them in step (`buf breaking` guards
 * those). Release and settle carry the reservation's amount so that a reader needs no earlier event to apply them.
 */
export type WalletEvent =
  | { readonly type: "WalletOpened"; readonly ownerId: string }
  | { readonly type: "FundsDeposited"; readonly amountCents: bigint }
  | { readonly type: "FundsWithdrawn"; readonly amountCents: bigint }
  | {
      readonly type: "FundsReserved";
      readonly reservationId: string;
      readonly amountCents: bigint;
      /** The purchase holding the reservation, when one does. */
      readonly purchaseId?: string;
    }
  | {
      readonly type: "PaymentReceived";
      readonly purchaseId: string;
      readonly artworkId: string;
      readonly amountCents: bigint;
      readonly kind: PayoutKind;
    }
  | { readonly type: "ReservationReleased"; readonly reservationId: string; readonly amountCents: bigint }
  | { readonly type: "ReservationSettled"; readonly reservationId: string; readonly amountCents: bigint }
  /**
   * Room made for a purchase's payments, all it will pay into the wallet: the balance may not grow into it
   * otherwise. A later one for the same purchase, before any of it was received, replaces it (a new quote).
   */
  | { readonly type: "PaymentExpected"; readonly purchaseId: string; readonly amountCents: bigint }
  /** The room a failed purchase had made, given back: the amount still expected when it was cancelled. */
  | { readonly type: "ExpectedPaymentCancelled"; readonly purchaseId: string; readonly amountCents: bigint };

/**
 * Funds held under one reservation id. `Held` counts towards `reservedCents`; `Released` (returned to the available
 * funds) and `Settled` (paid out of the wallet) are closed for good, and are kept so that the id is never reused.
 */
export interface Reservation {
  readonly amountCents: bigint;
  readonly status: "Held" | "Released" | "Settled";
  /** The purchase holding it, when one does: only that purchase releases or settles it. */
  readonly purchaseId?: string;
}

/**
 * Room a purchase made in a wallet for its payments to it (one purchase may pay a party twice: a royalty and the
 * proceeds). `Expected` counts `amountCents - receivedCents` towards `expectedCents`; `Received` (all of it
 * arrived) and `Cancelled` are closed for good, and are kept so that a purchase makes room once.
 */
export interface ExpectedPayment {
  readonly amountCents: bigint;
  readonly receivedCents: bigint;
  readonly status: "Expected" | "Received" | "Cancelled";
}

/**
 * A wallet folded from its events. `balanceCents` is everything in the wallet, reserved funds included;
 * `reservedCents` is the sum of the held reservations; the available funds are `balanceCents - reservedCents`.
 * `reservations` is a plain record keyed by reservation id (never a Map), so the state snapshots as JSON.
 *
 * `expectedCents` is what purchases that made room in the wallet have still to pay into it, and
 * `expectedPayments` those purchases' records, keyed by purchase id. Both are absent until a payment is first
 * expected (and in snapshots taken before expected payments existed): absent means none. The balance ceiling
 * holds `balanceCents + expectedCents`, so that every expected payment fits when it arrives.
 */
export type WalletState =
  | { readonly status: "Empty" }
  | {
      readonly status: "Open";
      readonly ownerId: string;
      readonly balanceCents: bigint;
      readonly reservedCents: bigint;
      readonly reservations: Readonly<Record<string, Reservation>>;
      readonly expectedCents?: bigint;
      readonly expectedPayments?: Readonly<Record<string, ExpectedPayment>>;
    };
