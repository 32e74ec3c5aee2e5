import { describe, expect, it } from "vitest";
import type { ArtworkEvent } from "../../domain/artwork/types.js";
import type { PurchaseEvent } from "../../domain/purchase/types.js";
import type { WalletEvent } from "../../domain/wallet/types.js";
import { decodeArtworkEvent, encodeArtworkEvent } from "./artwork-events.js";
import { decodePurchaseEvent, encodePurchaseEvent } from "./purchase-events.js";
import { decodeWalletEvent, encodeWalletEvent } from "./wallet-events.js";

const artworkEvents: ArtworkEvent[] = [
  {
    type: "ArtworkMinted",
    artistId: "ann",
    title: "Blue",
    contentHash: "sha256:ab",
    royaltySplit: [
      { recipientId: "ann", basisPoints: 500 },
      { recipientId: "gallery", basisPoints: 250 },
    ],
  },
  { type: "RoyaltySplitChanged", royaltySplit: [] },
  { type: "ArtworkListed", priceCents: 9_223_372_036_854_775_807n },
  { type: "ArtworkDelisted" },
  { type: "OwnershipTransferred", fromOwnerId: "ann", toOwnerId: "bob" },
  { type: "ArtworkBurned" },
  {
    type: "ArtworkSold",
    purchaseId: "p-1",
    sellerId: "ann",
    buyerId: "bob",
    priceCents: 1_000n,
    payouts: [
      { recipientId: "gallery", amountCents: 25n, kind: "Royalty" },
      { recipientId: "ann", amountCents: 975n, kind: "SaleProceeds" },
    ],
  },
];
const walletEvents: WalletEvent[] = [
  { type: "WalletOpened", ownerId: "ann" },
  { type: "FundsDeposited", amountCents: 1n },
  { type: "FundsWithdrawn", amountCents: 2n },
  { type: "FundsReserved", reservationId: "r-1", amountCents: 3n },
  { type: "ReservationReleased", reservationId: "r-1", amountCents: 3n },
  { type: "ReservationSettled", reservationId: "r-2", amountCents: 4n },
  { type: "FundsReserved", reservationId: "p-1", amountCents: 5n, purchaseId: "p-1" },
  { type: "PaymentReceived", purchaseId: "p-1", artworkId: "a-1", amountCents: 6n, kind: "SaleProceeds" },
];
const purchaseEvents: PurchaseEvent[] = [
  { type: "PurchaseStarted", artworkId: "a-1", buyerId: "bob", buyerWalletId: "w-bob", priceCents: 1_000n },
  { type: "PurchaseFundsReserved" },
  { type: "PurchaseArtworkTaken", sellerId: "ann", payouts: [{ recipientId: "ann", amountCents: 1_000n, kind: "SaleProceeds" }] },
  { type: "PurchaseCompleted" },
  { type: "PurchaseCompensating", reason: "not listed" },
  { type: "PurchaseFailed", reason: "not listed" },
];

describe("marketplace event records", () => {
  it.each(artworkEvents)("stores $type as its persisted message and reads it back", (event) => {
    const record = encodeArtworkEvent(event);
    expect(record.type).toBe(`foldline.marketplace.v1.${event.type}`);
    expect(record.schemaVersion).toBe(1);
    expect(decodeArtworkEvent(record)).toEqual(event);
  });

  it.each(walletEvents)("stores $type as its persisted message and reads it back", (event) => {
    const record = encodeWalletEvent(event);
    expect(record.type).toBe(`foldline.marketplace.v1.${event.type}`);
    expect(decodeWalletEvent(record)).toEqual(event);
  });

  it.each(purchaseEvents)("stores $type as its persisted message and reads it back", (event) => {
    const record = encodePurchaseEvent(event);
    expect(record.type).toBe(`foldline.marketplace.v1.${event.type}`);
    expect(decodePurchaseEvent(record)).toEqual(event);
  });

  it("refuses an unknown type, another aggregate's event and a newer schema version", () => {
    const deposited = encodeWalletEvent({ type: "FundsDeposited", amountCents: 1n });
    expect(() => decodeWalletEvent({ ...deposited, type: "foldline.marketplace.v1.NoSuchEvent" })).toThrow(
      "unknown marketplace event type foldline.marketplace.v1.NoSuchEvent",
    );
    expect(() => decodeArtworkEvent(deposited)).toThrow("foldline.marketplace.v1.FundsDeposited is not an artwork event");
    expect(() => decodeWalletEvent({ ...deposited, schemaVersion: 2 })).toThrow("has schema version 2; this code reads 1");
  });
});
