import { describe, expect, it } from "vitest";
import type { ArtworkEvent } from "../../domain/artwork/types.js";
import type { PurchaseEvent } from "../../domain/purchase/types.js";
import type { WalletEvent } from "../../domain/wallet/types.js";
import { decodeArtworkEvent, encodeArtworkEvent } from "./artwork-events.js";
import { decodePurchaseEvent, encodePurchaseEvent } from "./purchase-events.js";
import { decodeWalletEvent, decodeWalletEventReflective, encodeWalletEvent } from "./wallet-events.js";

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
  { type: "PaymentExpected", purchaseId: "p-1", amountCents: 7n },
  { type: "ExpectedPaymentCancelled", purchaseId: "p-1", amountCents: 7n },
];
const purchaseEvents: PurchaseEvent[] = [
  { type: "PurchaseStarted", artworkId: "a-1", buyerId: "bob", buyerWalletId: "w-bob", priceCents: 1_000n },
  { type: "PurchaseFundsReserved" },
  { type: "PurchasePayoutsQuoted", sellerId: "ann", payouts: [{ recipientId: "ann", amountCents: 1_000n, kind: "SaleProceeds" }] },
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

  it("reads wallet events as protobuf-es does, from random, extended and damaged payloads", () => {
    let seed = 7;
    const int = (below: number): number => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      return Math.floor((seed / 2 ** 32) * below);
    };
    const texts = ["", "r-1", "ann", "é✓🎨", "x".repeat(200)];
    const amounts = [0n, 1n, -1n, 127n, 128n, 2n ** 53n + 1n, 9_223_372_036_854_775_807n, -9_223_372_036_854_775_808n];
    const pick = <T>(values: readonly T[]): T => values[int(values.length)] as T;
    const outcome = (decode: () => unknown): unknown => {
      try {
        return decode();
      } catch {
        return "throws";
      }
    };
    let failures = 0;
    for (let i = 0; i < 20_000; i++) {
      const event = pick<WalletEvent>([
        { type: "WalletOpened", ownerId: pick(texts) },
        { type: "FundsDeposited", amountCents: pick(amounts) },
        { type: "FundsWithdrawn", amountCents: pick(amounts) },
        { type: "FundsReserved", reservationId: pick(texts), amountCents: pick(amounts) },
        { type: "FundsReserved", reservationId: pick(texts), amountCents: pick(amounts), purchaseId: pick(texts.slice(1)) },
        { type: "ReservationReleased", reservationId: pick(texts), amountCents: pick(amounts) },
        { type: "ReservationSettled", reservationId: pick(texts), amountCents: pick(amounts) },
        { type: "PaymentExpected", purchaseId: pick(texts), amountCents: pick(amounts) },
        { type: "ExpectedPaymentCancelled", purchaseId: pick(texts), amountCents: pick(amounts) },
      ]);
      const record = encodeWalletEvent(event);
      let payload = Uint8Array.from(record.payload);
      switch (int(4)) {
        case 0: // an unknown field, of a later version
          payload = Uint8Array.from([...payload, 0x48, 0x96, 0x01, 0x52, 0x01, 0x41]);
          break;
        case 1: // damaged
          for (let k = 0; k < 2 && payload.length > 0; k++) payload[int(payload.length)] = int(256);
          break;
        case 2: // cut short, or noise
          payload = int(2) === 0 ? payload.subarray(0, int(payload.length + 1)) : Uint8Array.from({ length: int(12) }, () => int(256));
          break;
      }
      const damaged = { ...record, payload };
      const reference = outcome(() => decodeWalletEventReflective(damaged));
      if (reference === "throws") failures++;
      expect(outcome(() => decodeWalletEvent(damaged))).toEqual(reference);
    }
    expect(failures).toBeGreaterThan(1_000);
  });

  it("refuses a tag of field 0 in a wallet event whose message has no field of that kind", () => {
    const opened = encodeWalletEvent({ type: "WalletOpened", ownerId: "ann" });
    const deposited = encodeWalletEvent({ type: "FundsDeposited", amountCents: 5n });
    // Field 0 with the wire type of the int64 a WalletOpened lacks, and of the string a FundsDeposited lacks.
    for (const bad of [{ ...opened, payload: Uint8Array.from([0x00, 0x01, ...opened.payload]) }, { ...deposited, payload: Uint8Array.from([0x02, 0x00, ...deposited.payload]) }]) {
      expect(() => decodeWalletEventReflective(bad)).toThrow();
      expect(() => decodeWalletEvent(bad)).toThrow();
    }
  });
});
