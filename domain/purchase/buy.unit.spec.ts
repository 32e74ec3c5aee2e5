import { describe, expect, it } from "vitest";
import { artworkDecider } from "../artwork/decider.js";
import type { ArtworkEvent } from "../artwork/types.js";
import type { Decider } from "../decider.js";
import { AlreadyExistsError, NotFoundError, RuleViolation } from "../errors.js";
import { walletDecider } from "../wallet/decider.js";
import { maxBalanceCents, type WalletEvent } from "../wallet/types.js";
import { buyArtwork, type BuyArtwork, type PurchaseParties } from "./buy.js";
import { purchaseDecider } from "./decider.js";
import type { PurchaseEvent } from "./types.js";

type Events = { readonly [aggregate: string]: readonly unknown[] };

/**
 * The parties of a purchase in memory, folded from `given` (keyed `wallet/<id>`, `artwork/<id>`, `purchase/<id>`)
 * by the deciders themselves; `decided` collects what the purchase decided, per aggregate, in order.
 */
function partiesOf(given: Events): { parties: PurchaseParties; decided: Record<string, unknown[]> } {
  const decided: Record<string, unknown[]> = {};
  const state = <C, E, S>(decider: Decider<C, E, S>, key: string): S =>
    [...((given[key] ?? []) as E[]), ...((decided[key] ?? []) as E[])].reduce((s, e) => decider.evolve(s, e), decider.initialState);
  const decide = <C, E, S>(decider: Decider<C, E, S>, key: string, command: C): Promise<E[]> => {
    const events = decider.decide(command, state(decider, key));
    (decided[key] ??= []).push(...events);
    return Promise.resolve(events);
  };
  return {
    decided,
    parties: {
      purchase: (id) => Promise.resolve(state(purchaseDecider, `purchase/${id}`)),
      artwork: (id) => Promise.resolve(state(artworkDecider, `artwork/${id}`)),
      wallet: (id) => Promise.resolve(state(walletDecider, `wallet/${id}`)),
      decidePurchase: (id, c) => decide(purchaseDecider, `purchase/${id}`, c),
      decideArtwork: (id, c) => decide(artworkDecider, `artwork/${id}`, c),
      decideWallet: (id, c) => decide(walletDecider, `wallet/${id}`, c),
    },
  };
}

const opened = (ownerId: string, deposit = 0n): WalletEvent[] => [
  { type: "WalletOpened", ownerId },
  ...(deposit > 0n ? [{ type: "FundsDeposited" as const, amountCents: deposit }] : []),
];
const minted: ArtworkEvent = {
  type: "ArtworkMinted",
  artistId: "ann",
  title: "t",
  contentHash: "h",
  royaltySplit: [
    { recipientId: "w-ann", basisPoints: 1_000 },
    { recipientId: "w-gallery", basisPoints: 500 },
  ],
};
const sold: ArtworkEvent = {
  type: "ArtworkSold",
  purchaseId: "p-0",
  sellerId: "ann",
  buyerId: "sam",
  priceCents: 100n,
  payouts: [],
};
const world: Events = {
  "artwork/a-1": [
    minted,
    sold,
    { type: "OwnershipTransferred", fromOwnerId: "ann", toOwnerId: "sam" },
    { type: "ArtworkListed", priceCents: 1_000n, payoutWalletId: "w-sam-savings" },
  ],
  "wallet/w-bob": opened("bob", 5_000n),
  "wallet/w-ann": opened("ann"),
  "wallet/w-gallery": opened("gallery"),
  "wallet/w-sam-savings": opened("sam"),
};
const buy: BuyArtwork = { purchaseId: "p-1", artworkId: "a-1", buyerId: "bob", buyerWalletId: "w-bob", priceCents: 1_000n };
const payouts = [
  { recipientId: "w-ann", amountCents: 100n, kind: "Royalty" as const },
  { recipientId: "w-gallery", amountCents: 50n, kind: "Royalty" as const },
  { recipientId: "w-sam-savings", amountCents: 850n, kind: "SaleProceeds" as const },
];
const paid = (amountCents: bigint, kind: "Royalty" | "SaleProceeds"): WalletEvent[] => [
  { type: "PaymentReceived", purchaseId: "p-1", artworkId: "a-1", amountCents, kind },
];

describe("buyArtwork", () => {
  it("records the purchase, sells the artwork, debits the buyer and pays each payout into its wallet", async () => {
    const { parties, decided } = partiesOf(world);
    await buyArtwork(buy, parties);
    const purchase: PurchaseEvent[] = [
      { type: "PurchaseStarted", artworkId: "a-1", buyerId: "bob", buyerWalletId: "w-bob", priceCents: 1_000n },
      { type: "PurchaseArtworkTaken", sellerId: "sam", payouts },
      { type: "PurchaseCompleted" },
    ];
    expect(decided).toStrictEqual({
      "purchase/p-1": purchase,
      "artwork/a-1": [
        { type: "ArtworkSold", purchaseId: "p-1", sellerId: "sam", buyerId: "bob", priceCents: 1_000n, payouts },
        { type: "OwnershipTransferred", fromOwnerId: "sam", toOwnerId: "bob" },
      ],
      "wallet/w-bob": [
        { type: "FundsReserved", reservationId: "p-1", amountCents: 1_000n, purchaseId: "p-1" },
        { type: "ReservationSettled", reservationId: "p-1", amountCents: 1_000n },
      ],
      "wallet/w-ann": paid(100n, "Royalty"),
      "wallet/w-gallery": paid(50n, "Royalty"),
      "wallet/w-sam-savings": paid(850n, "SaleProceeds"),
    });
  });

  it("pays the proceeds into the wallet named after the owner when the listing names none", async () => {
    const listedBefore = { ...world, "artwork/a-1": [minted, { type: "ArtworkListed", priceCents: 1_000n }], "wallet/ann": opened("ann") };
    const { parties, decided } = partiesOf(listedBefore);
    await buyArtwork(buy, parties);
    expect(decided["wallet/ann"]).toStrictEqual(paid(850n, "SaleProceeds"));
  });

  it("lets a buyer who is also a royalty recipient pay and be paid from one wallet", async () => {
    const { parties, decided } = partiesOf({ ...world, "wallet/w-ann": opened("ann", 2_000n) });
    await buyArtwork({ ...buy, buyerId: "ann", buyerWalletId: "w-ann" }, parties);
    expect(decided["wallet/w-ann"]?.map((e) => (e as WalletEvent).type)).toEqual([
      "FundsReserved",
      "ReservationSettled",
      "PaymentReceived",
    ]);
  });

  it.each([
    ["a used purchase id", { ...world, "purchase/p-1": [{ type: "PurchaseStarted", ...buy }] }, buy, AlreadyExistsError, "purchase p-1 already exists"],
    ["an artwork that does not exist", world, { ...buy, artworkId: "a-2" }, NotFoundError, "artwork a-2 does not exist"],
    ["another price", world, { ...buy, priceCents: 999n }, RuleViolation, "listed at 1000 cents"],
    ["a buyer who owns it", world, { ...buy, buyerId: "sam" }, RuleViolation, "sam already owns artwork a-1"],
    ["a buyer's wallet that does not exist", world, { ...buy, buyerWalletId: "w-nobody" }, NotFoundError, "wallet w-nobody does not exist"],
    ["a buyer who cannot pay", { ...world, "wallet/w-bob": opened("bob", 999n) }, buy, RuleViolation, "insufficient funds"],
    ["a payout wallet nobody opened", { ...world, "wallet/w-gallery": [] }, buy, NotFoundError, "wallet w-gallery, which artwork a-1 pays a royalty of 50 cents into, does not exist"],
    [
      "a payee's wallet with no room",
      { ...world, "wallet/w-sam-savings": opened("sam", maxBalanceCents - 100n) },
      buy,
      RuleViolation,
      "above the maximum",
    ],
  ] as const)("refuses %s", async (_, given, request, errorClass, message) => {
    const { parties } = partiesOf(given);
    const refused = buyArtwork(request, parties);
    await expect(refused).rejects.toThrow(errorClass);
    await expect(refused).rejects.toThrow(message);
  });
});
