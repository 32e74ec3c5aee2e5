import { describe, expect, it } from "vitest";
import { evolve, initialState } from "./evolve.js";
import type { WalletEvent, WalletState } from "./types.js";

const fold = (events: readonly WalletEvent[]): WalletState =>
  events.reduce<WalletState>((state, event) => evolve(state, event), initialState);

describe("evolve", () => {
  it("starts Empty", () => {
    expect(initialState).toStrictEqual({ status: "Empty" });
  });

  it("folds a life into the expected state", () => {
    expect(
      fold([
        { type: "WalletOpened", ownerId: "u-1" },
        { type: "FundsDeposited", amountCents: 1_000n },
        { type: "FundsReserved", reservationId: "r-1", amountCents: 300n },
        { type: "FundsReserved", reservationId: "r-2", amountCents: 200n },
        { type: "FundsReserved", reservationId: "r-3", amountCents: 100n },
        { type: "ReservationReleased", reservationId: "r-1", amountCents: 300n },
        { type: "ReservationSettled", reservationId: "r-2", amountCents: 200n },
        { type: "FundsWithdrawn", amountCents: 50n },
      ]),
    ).toStrictEqual({
      status: "Open",
      ownerId: "u-1",
      balanceCents: 750n,
      reservedCents: 100n,
      reservations: {
        "r-1": { amountCents: 300n, status: "Released" },
        "r-2": { amountCents: 200n, status: "Settled" },
        "r-3": { amountCents: 100n, status: "Held" },
      },
    });
  });

  it("does not mutate the state it folds from", () => {
    const before = fold([
      { type: "WalletOpened", ownerId: "u-1" },
      { type: "FundsDeposited", amountCents: 100n },
    ]);
    const snapshot = structuredClone(before);
    evolve(before, { type: "FundsReserved", reservationId: "r-1", amountCents: 10n });
    expect(before).toStrictEqual(snapshot);
  });

  it("ignores events that do not fit the state instead of throwing", () => {
    expect(fold([{ type: "FundsDeposited", amountCents: 1n }])).toStrictEqual({ status: "Empty" });
    const open = fold([{ type: "WalletOpened", ownerId: "u-1" }]);
    expect(evolve(open, { type: "WalletOpened", ownerId: "u-2" })).toBe(open);
  });

  it("folds room made for payments, and the payments that fill it, into a state that had none (an older snapshot)", () => {
    const older: WalletState = { status: "Open", ownerId: "u-1", balanceCents: 10n, reservedCents: 0n, reservations: {} };
    const events: WalletEvent[] = [
      { type: "PaymentExpected", purchaseId: "p-1", amountCents: 150n },
      { type: "PaymentExpected", purchaseId: "p-2", amountCents: 40n },
      { type: "PaymentReceived", purchaseId: "p-1", artworkId: "a-1", amountCents: 50n, kind: "Royalty" },
      { type: "ExpectedPaymentCancelled", purchaseId: "p-2", amountCents: 40n },
      { type: "PaymentReceived", purchaseId: "p-1", artworkId: "a-1", amountCents: 100n, kind: "SaleProceeds" },
    ];
    expect(events.reduce(evolve, older)).toStrictEqual({
      ...older,
      balanceCents: 160n,
      expectedCents: 0n,
      expectedPayments: {
        "p-1": { amountCents: 150n, receivedCents: 150n, status: "Received" },
        "p-2": { amountCents: 40n, receivedCents: 0n, status: "Cancelled" },
      },
    });
  });
});
