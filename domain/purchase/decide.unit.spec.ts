import { describe, it } from "vitest";
import { AlreadyExistsError, InvalidCommand, NotFoundError, RuleViolation } from "../errors.js";
import { scenario } from "../testing/given.js";
import { purchaseDecider } from "./decider.js";
import type { PurchaseCommand, PurchaseEvent, PurchaseStep } from "./types.js";

const { given } = scenario(purchaseDecider);
const purchaseId = "p-1";

const started: PurchaseEvent = { type: "PurchaseStarted", artworkId: "a-1", buyerId: "bob", buyerWalletId: "w-bob", priceCents: 500n };
const reserved: PurchaseStep = { type: "PurchaseFundsReserved" };
const payouts = [
  { recipientId: "ann", amountCents: 50n, kind: "Royalty" as const },
  { recipientId: "sam", amountCents: 450n, kind: "SaleProceeds" as const },
];
const quoted: PurchaseStep = { type: "PurchasePayoutsQuoted", sellerId: "sam", payouts };
const taken: PurchaseStep = { type: "PurchaseArtworkTaken", sellerId: "sam", payouts };
const completed: PurchaseStep = { type: "PurchaseCompleted" };
const compensating: PurchaseStep = { type: "PurchaseCompensating", reason: "not listed" };
const failed: PurchaseStep = { type: "PurchaseFailed", reason: "not listed" };

const start = (over: Partial<Extract<PurchaseCommand, { type: "StartPurchase" }>> = {}): PurchaseCommand => ({
  type: "StartPurchase",
  purchaseId,
  artworkId: "a-1",
  buyerId: "bob",
  buyerWalletId: "w-bob",
  priceCents: 500n,
  ...over,
});
const record = (event: PurchaseStep): PurchaseCommand => ({ type: "RecordStep", purchaseId, event });

describe("CompletePurchase", () => {
  const complete = (over: Partial<Extract<PurchaseCommand, { type: "CompletePurchase" }>> = {}): PurchaseCommand => ({
    ...(start() as Extract<PurchaseCommand, { type: "StartPurchase" }>),
    type: "CompletePurchase",
    sellerId: "sam",
    payouts,
    ...over,
  });
  it("records a purchase made at once: started, artwork taken, completed", () => {
    given([]).when(complete()).then([started, taken, completed]);
  });
  it("refuses a purchase id used before", () => {
    given([started]).when(complete()).thenThrows(AlreadyExistsError, "purchase p-1 already exists");
  });
  it("refuses incomplete terms", () => {
    given([]).when(complete({ sellerId: "" })).thenThrows(InvalidCommand, "purchase p-1 needs a seller");
    given([]).when(complete({ priceCents: 0n })).thenThrows(InvalidCommand, "price must be positive");
  });
});

describe("StartPurchase", () => {
  it("starts a purchase", () => {
    given([]).when(start()).then([started]);
  });
  it("refuses a purchase id used before", () => {
    given([started, reserved]).when(start()).thenThrows(AlreadyExistsError, "purchase p-1 already exists");
  });
  it.each([
    [{ priceCents: 0n }, "price must be positive"],
    [{ priceCents: -1n }, "price must be positive"],
    [{ buyerWalletId: "" }, "needs an artwork, a buyer and a buyer's wallet"],
  ])("refuses %o", (over, message) => {
    given([]).when(start(over)).thenThrows(InvalidCommand, message);
  });
});

describe("RecordStep", () => {
  it("follows the life of a completed purchase", () => {
    given([started]).when(record(reserved)).then([reserved]);
    given([started, reserved]).when(record(quoted)).then([quoted]);
    given([started, reserved, quoted]).when(record(taken)).then([taken]);
    given([started, reserved, quoted, taken]).when(record(completed)).then([completed]);
    given([started, reserved, quoted, taken]).when(record(completed)).thenState({
      status: "Completed",
      artworkId: "a-1",
      buyerId: "bob",
      buyerWalletId: "w-bob",
      priceCents: 500n,
      sellerId: "sam",
      payouts,
      reason: "",
    });
  });

  it("follows the life of a failed purchase, with and without compensation", () => {
    given([started]).when(record(failed)).then([failed]);
    given([started, reserved]).when(record(compensating)).then([compensating]);
    given([started, reserved, compensating]).when(record(failed)).thenState({
      status: "Failed",
      artworkId: "a-1",
      buyerId: "bob",
      buyerWalletId: "w-bob",
      priceCents: 500n,
      sellerId: null,
      payouts: [],
      reason: "not listed",
    });
  });

  it("keeps the quoted payouts from the quote on, quotes again, and gives up after it when a payout has no room", () => {
    given([started, reserved]).when(record(quoted)).thenState({
      status: "PayoutsQuoted",
      artworkId: "a-1",
      buyerId: "bob",
      buyerWalletId: "w-bob",
      priceCents: 500n,
      sellerId: "sam",
      payouts,
      reason: "",
    });
    const requoted: PurchaseStep = { type: "PurchasePayoutsQuoted", sellerId: "sue", payouts: [{ recipientId: "sue", amountCents: 500n, kind: "SaleProceeds" }] };
    given([started, reserved, quoted]).when(record(requoted)).then([requoted]);
    given([started, reserved, quoted, requoted])
      .when(record({ type: "PurchaseArtworkTaken", sellerId: "sue", payouts: [{ recipientId: "sue", amountCents: 500n, kind: "SaleProceeds" }] }))
      .thenState({
        status: "ArtworkTaken",
        artworkId: "a-1",
        buyerId: "bob",
        buyerWalletId: "w-bob",
        priceCents: 500n,
        sellerId: "sue",
        payouts: [{ recipientId: "sue", amountCents: 500n, kind: "SaleProceeds" }],
        reason: "",
      });
    const noRoom: PurchaseStep = { type: "PurchaseCompensating", reason: "a payout could not be credited" };
    given([started, reserved, quoted]).when(record(noRoom)).then([noRoom]);
    given([started, reserved, quoted, noRoom]).when(record(failed)).then([failed]);
  });

  it("refuses the artwork taken with payouts other than the quoted ones: room was made for those only", () => {
    const otherwise: PurchaseStep = { type: "PurchaseArtworkTaken", sellerId: "sam", payouts: [{ recipientId: "sam", amountCents: 500n, kind: "SaleProceeds" }] };
    given([started, reserved, quoted])
      .when(record(otherwise))
      .thenThrows(RuleViolation, "purchase p-1 made room for the payouts it quoted; the artwork was taken with others");
  });

  it.each<[PurchaseEvent[], PurchaseStep]>([
    [[started], taken],
    [[started], quoted],
    [[started], completed],
    [[started, reserved], taken],
    [[started, reserved], failed],
    [[started, reserved, quoted], failed],
    [[started, reserved, quoted], completed],
    [[started, reserved, quoted, taken], compensating],
    [[started, reserved, quoted, taken, completed], failed],
    [[started, failed], reserved],
    [[started, reserved, compensating], taken],
    [[started, reserved, compensating], quoted],
  ])("refuses a step that does not follow (%#)", (history, step) => {
    given(history).when(record(step)).thenThrows(RuleViolation, "cannot follow");
  });

  it("refuses a step of a purchase never started", () => {
    given([]).when(record(reserved)).thenThrows(NotFoundError, "purchase p-1 does not exist");
  });
});
