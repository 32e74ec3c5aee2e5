import { findExpected, roomLeft, type OpenWallet } from "./expected-payments.js";
import type { ExpectedPayment, Reservation, WalletEvent, WalletState } from "./types.js";

/** The state of a wallet before its first event: not opened. */
export const initialState: WalletState = { status: "Empty" };

/**
 * Folds one wallet event into the state. Total and pure: it never throws and never mutates its arguments; the
 * reservations record is rebuilt with spread. An event that does not fit the state (anything before
 * `WalletOpened`, a second open) leaves the state unchanged; `decide` never produces such a sequence. Release
 * lowers `reservedCents`; settle lowers both `reservedCents` and `balanceCents` (the money leaves the wallet).
 * A payment a purchase made room for fills that room first: what it takes of it leaves `expectedCents`.
 */
export function evolve(state: WalletState, event: WalletEvent): WalletState {
  if (state.status === "Empty") {
    if (event.type !== "WalletOpened") return state;
    return { status: "Open", ownerId: event.ownerId, balanceCents: 0n, reservedCents: 0n, reservations: {} };
  }
  switch (event.type) {
    case "WalletOpened":
      return state;
    case "FundsDeposited":
      return { ...state, balanceCents: state.balanceCents + event.amountCents };
    case "FundsWithdrawn":
      return { ...state, balanceCents: state.balanceCents - event.amountCents };
    case "FundsReserved":
      return {
        ...state,
        reservedCents: state.reservedCents + event.amountCents,
        reservations: withReservation(state.reservations, event.reservationId, {
          amountCents: event.amountCents,
          status: "Held",
          ...(event.purchaseId === undefined ? {} : { purchaseId: event.purchaseId }),
        }),
      };
    case "PaymentReceived":
      return receive({ ...state, balanceCents: state.balanceCents + event.amountCents }, event.purchaseId, event.amountCents);
    case "PaymentExpected": {
      // A second one for the purchase resizes its room (decide allows that before any of it is received).
      const held = roomLeft(findExpected(state, event.purchaseId));
      return withExpected(state, event.purchaseId, event.amountCents - held, {
        amountCents: event.amountCents,
        receivedCents: 0n,
        status: "Expected",
      });
    }
    case "ExpectedPaymentCancelled": {
      const expected = findExpected(state, event.purchaseId);
      if (expected === undefined) return state;
      return withExpected(state, event.purchaseId, -event.amountCents, { ...expected, status: "Cancelled" });
    }
    case "ReservationReleased":
      return {
        ...state,
        reservedCents: state.reservedCents - event.amountCents,
        reservations: withReservation(state.reservations, event.reservationId, {
          amountCents: event.amountCents,
          status: "Released",
        }),
      };
    case "ReservationSettled":
      return {
        ...state,
        balanceCents: state.balanceCents - event.amountCents,
        reservedCents: state.reservedCents - event.amountCents,
        reservations: withReservation(state.reservations, event.reservationId, {
          amountCents: event.amountCents,
          status: "Settled",
        }),
      };
    default:
      // An unknown event type (a newer writer) is ignored rather than thrown on: evolve is total.
      return state;
  }
}

/** Fills the room `purchaseId` made with what it paid, up to what it expected; unchanged when it made none. */
function receive(state: OpenWallet, purchaseId: string, amountCents: bigint): OpenWallet {
  const expected = findExpected(state, purchaseId);
  if (expected?.status !== "Expected") return state;
  const due = roomLeft(expected);
  const filled = amountCents < due ? amountCents : due;
  const receivedCents = expected.receivedCents + filled;
  const status = receivedCents === expected.amountCents ? "Received" : "Expected";
  return withExpected(state, purchaseId, -filled, { ...expected, receivedCents, status });
}

/** Records `payment` under `purchaseId` and moves `expectedCents` by `deltaCents`. */
function withExpected(state: OpenWallet, purchaseId: string, deltaCents: bigint, payment: ExpectedPayment): OpenWallet {
  return {
    ...state,
    expectedCents: (state.expectedCents ?? 0n) + deltaCents,
    expectedPayments: { ...state.expectedPayments, [purchaseId]: payment },
  };
}

// A computed key defines an own property even for "__proto__", so the record stays plain data.
function withReservation(
  reservations: Readonly<Record<string, Reservation>>,
  reservationId: string,
  reservation: Reservation,
): Record<string, Reservation> {
  return { ...reservations, [reservationId]: reservation };
}
