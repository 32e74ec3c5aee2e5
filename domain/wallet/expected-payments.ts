import type { ExpectedPayment, WalletState } from "./types.js";

/** A wallet that has been opened. */
export type OpenWallet = Extract<WalletState, { status: "Open" }>;

/** The payment `purchaseId` said it will make into the wallet, whatever became of it; undefined when it said none. */
export function findExpected(state: OpenWallet, purchaseId: string): ExpectedPayment | undefined {
  const payments = state.expectedPayments;
  return payments !== undefined && Object.hasOwn(payments, purchaseId) ? payments[purchaseId] : undefined;
}

/** What is left of the room an expected payment holds: expected and not received yet; 0 once closed or never made. */
export function roomLeft(expected: ExpectedPayment | undefined): bigint {
  return expected?.status === "Expected" ? expected.amountCents - expected.receivedCents : 0n;
}
