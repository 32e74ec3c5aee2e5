import { describe, expect, it } from "vitest";
import { payouts, samePayouts } from "./payouts.js";

describe("payouts", () => {
  it("rounds each royalty down and gives the seller the rest, so the amounts add up to the price", () => {
    const split = [
      { recipientId: "artist", basisPoints: 333 },
      { recipientId: "gallery", basisPoints: 1 },
    ];
    expect(payouts(1_001n, "seller", split)).toEqual([
      { recipientId: "artist", amountCents: 33n, kind: "Royalty" }, // 33.333 cents
      { recipientId: "seller", amountCents: 968n, kind: "SaleProceeds" }, // gallery's 0.1001 cent rounds to nothing
    ]);
  });

  it("loses no cent over many prices and splits", () => {
    for (let price = 1n; price < 2_000n; price += 7n) {
      for (const bps of [[1], [9_999], [5_000, 5_000], [3_333, 3_333, 3_333], [1, 2, 3, 4]]) {
        const split = bps.map((basisPoints, i) => ({ recipientId: `r${i}`, basisPoints }));
        const paid = payouts(price, "seller", split);
        expect(paid.reduce((sum, p) => sum + p.amountCents, 0n)).toBe(price);
        expect(paid.every((p) => p.amountCents > 0n)).toBe(true);
      }
    }
  });

  it("pays the seller everything without a split, and nothing when the split gives away 100 %", () => {
    expect(payouts(500n, "s", [])).toEqual([{ recipientId: "s", amountCents: 500n, kind: "SaleProceeds" }]);
    expect(payouts(500n, "s", [{ recipientId: "a", basisPoints: 10_000 }])).toEqual([
      { recipientId: "a", amountCents: 500n, kind: "Royalty" },
    ]);
  });

  it("keeps int64 prices exact", () => {
    const price = 9_223_372_036_854_775_807n;
    const [royalty, rest] = payouts(price, "s", [{ recipientId: "a", basisPoints: 1 }]);
    expect(royalty?.amountCents).toBe(price / 10_000n);
    expect(rest?.amountCents).toBe(price - price / 10_000n);
  });
});

describe("samePayouts", () => {
  const list = payouts(1_001n, "seller", [{ recipientId: "artist", basisPoints: 333 }]);
  it("holds for the same parties, amounts and kinds in the same order only", () => {
    expect(samePayouts(list, payouts(1_001n, "seller", [{ recipientId: "artist", basisPoints: 333 }]))).toBe(true);
    expect(samePayouts(list, [...list].reverse())).toBe(false);
    expect(samePayouts(list, list.slice(1))).toBe(false);
    expect(samePayouts(list, payouts(1_001n, "other", [{ recipientId: "artist", basisPoints: 333 }]))).toBe(false);
    expect(samePayouts(list, payouts(1_001n, "seller", [{ recipientId: "artist", basisPoints: 400 }]))).toBe(false);
    expect(samePayouts(list, list.map((p) => ({ ...p, kind: "Royalty" as const })))).toBe(false);
    expect(samePayouts([], [])).toBe(true);
  });
});
