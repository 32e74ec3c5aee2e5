import type { Payout, RoyaltyShare } from "./types.js";

/**
 * Splits a sale's price: each royalty recipient, in the split's order, receives
 * `floor(priceCents * basisPoints / 10 000)`; the seller's wallet, `proceedsTo`, receives the rest. Rounding is always down for the
 * royalties, so the amounts add up to the price exactly and no cent is lost. Zero amounts are left out (a
 * royalty too small to round to a cent, or nothing left for the seller when the split gives away 100 %).
 */
export function payouts(priceCents: bigint, proceedsTo: string, split: readonly RoyaltyShare[]): Payout[] {
  const result: Payout[] = [];
  let royalties = 0n;
  for (const { recipientId, basisPoints } of split) {
    const amountCents = (priceCents * BigInt(basisPoints)) / 10_000n;
    royalties += amountCents;
    if (amountCents > 0n) result.push({ recipientId, amountCents, kind: "Royalty" });
  }
  const proceeds = priceCents - royalties;
  if (proceeds > 0n) result.push({ recipientId: proceedsTo, amountCents: proceeds, kind: "SaleProceeds" });
  return result;
}

/** Whether two lists of payouts pay the same parties the same amounts for the same reasons, in the same order. */
export function samePayouts(a: readonly Payout[], b: readonly Payout[]): boolean {
  return (
    a.length === b.length &&
    a.every((payout, i) => {
      const other = b[i];
      return (
        other !== undefined &&
        payout.recipientId === other.recipientId &&
        payout.amountCents === other.amountCents &&
        payout.kind === other.kind
      );
    })
  );
}
