import type { Reservation, WalletEvent, WalletState } from "./types.js";

/** The state of a wallet before its first event: not opened. */
export const initialState: WalletState = { status: "Empty" };

/**
 * Folds one wallet event into the state. Total and pure: it never throws and never mutates its arguments; the
 * reservations record is rebuilt with spread. An event that does not fit the state (anything before
 * `WalletOpened`, a second open) leaves the state unchanged; `decide` never produces such a sequence. Release
 * lowers `reservedCents`; settle lowers both `reservedCents` and `balanceCents` (the money leaves the wallet).
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
      return { ...state, balanceCents: state.balanceCents + event.amountCents };
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

// A computed key defines an own property even for "__proto__", so the record stays plain data.
function withReservation(
  reservations: Readonly<Record<string, Reservation>>,
  reservationId: string,
  reservation: Reservation,
): Record<string, Reservation> {
  return { ...reservations, [reservationId]: reservation };
}
