import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import { jetstream } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { decodeArtworkEvent } from "../commands/marketplace/artwork-events.js";
import { decodePurchaseEvent } from "../commands/marketplace/purchase-events.js";
import { decodeWalletEvent } from "../commands/marketplace/wallet-events.js";
import { artworkDecider } from "../domain/artwork/decider.js";
import type { ArtworkState } from "../domain/artwork/types.js";
import { purchaseDecider } from "../domain/purchase/decider.js";
import type { PurchaseState } from "../domain/purchase/types.js";
import { walletDecider } from "../domain/wallet/decider.js";
import { maxBalanceCents, type WalletEvent, type WalletState } from "../domain/wallet/types.js";
import { processesBucket } from "../streams/topology.js";
import { startTestBed, type Clients, type TestBed } from "./harness/app.js";
import { startStepByStep } from "./harness/purchases.js";
import { until } from "./harness/until.js";

// Purchases whose payouts would take a payee's wallet past the balance ceiling (the int64 maximum): atomic
// purchases through the API, and a purchase made step by step by the purchase process manager running in the app
// (embedded projectors), as an earlier foldline started them.

let bed: TestBed;
let app: App;
let c: Clients;
let processes: KV;

beforeAll(async () => {
  ({ app, c } = bed = await startTestBed("foldline-payout-ceiling-", (dir) => ({
    PROJECTORS: "embedded",
    READ_MODEL_DB: join(dir, "read-models.sqlite"),
  })));
  processes = await new Kvm(jetstream(app.streams.nc)).open(processesBucket);
});
afterAll(async () => {
  await bed.close();
});

const meta = (actor = "") => ({ commandId: randomUUID(), actor });
const unique = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`;

/** Folds one aggregate's commits with its decider, straight from the stream. */
async function fold<E, S>(subject: string, decider: { initialState: S; evolve(s: S, e: E): S }, decode: (r: never) => E): Promise<S> {
  let state = decider.initialState;
  for (const commit of await app.streams.store.readAggregate(subject)) {
    for (const record of commit.events) state = decider.evolve(state, decode(record as never));
  }
  return state;
}

const wallet = (id: string): Promise<WalletState> => fold(`ev.wallet.${id}`, walletDecider, decodeWalletEvent);
const artwork = (id: string): Promise<ArtworkState> => fold(`ev.artwork.${id}`, artworkDecider, decodeArtworkEvent);
const purchase = (id: string): Promise<PurchaseState> => fold(`ev.purchase.${id}`, purchaseDecider, decodePurchaseEvent);

/** Every event of a wallet, to tell what a purchase did to it. */
async function walletEvents(id: string): Promise<WalletEvent[]> {
  const commits = await app.streams.store.readAggregate(`ev.wallet.${id}`);
  return commits.flatMap((commit) => commit.events.map(decodeWalletEvent));
}

/**
 * Waits until the purchase has ended, or until the process manager has given up on its last commit (parked it),
 * and answers its state then: a purchase that stalls is seen stalled, not as a timeout.
 */
async function outcome(purchaseId: string): Promise<PurchaseState> {
  const subject = `ev.purchase.${purchaseId}`;
  let state: PurchaseState = purchaseDecider.initialState;
  await until(`purchase ${purchaseId} to end or be parked`, async () => {
    state = await purchase(purchaseId);
    if (state.status === "Completed" || state.status === "Failed") return true;
    const last = await app.streams.store.lastSequence(subject);
    return (await processes.get(`parked.purchases.${last}`)) !== null;
  });
  return state;
}

interface Sale {
  readonly artworkId: string;
  readonly artistId: string;
  readonly buyerId: string;
  readonly buyerWalletId: string;
}

/** Mints an artwork with `split`, lists it at `priceCents` and opens a buyer's wallet holding 1 000 cents. */
async function saleOf(priceCents: bigint, split: { recipientId: string; basisPoints: number }[] = []): Promise<Sale> {
  const artworkId = unique("art");
  const artistId = unique("artist");
  const buyerId = unique("buyer");
  const buyerWalletId = unique("buyer-wallet");
  await c.artwork.mintArtwork({ metadata: meta(), artworkId, artistId, title: "t", contentHash: "sha256:00", royaltySplit: split });
  await c.artwork.listForSale({ metadata: meta(artistId), artworkId, priceCents, payoutWalletId: artistId });
  await c.wallet.openWallet({ metadata: meta(), walletId: buyerWalletId, ownerId: buyerId });
  await c.wallet.deposit({ metadata: meta(), walletId: buyerWalletId, amountCents: 1_000n });
  return { artworkId, artistId, buyerId, buyerWalletId };
}

/** Opens the wallet whose id is the party's (where the listings and splits here pay it) holding `balanceCents`. */
async function payeeHolding(partyId: string, balanceCents: bigint): Promise<void> {
  await c.wallet.openWallet({ metadata: meta(), walletId: partyId, ownerId: partyId });
  await c.wallet.deposit({ metadata: meta(), walletId: partyId, amountCents: balanceCents });
}

function buy(sale: Sale, priceCents: bigint, purchaseId = unique("purchase")) {
  return c.purchases.buyArtwork({
    metadata: meta(sale.buyerId),
    purchaseId,
    artworkId: sale.artworkId,
    buyerId: sale.buyerId,
    buyerWalletId: sale.buyerWalletId,
    priceCents,
  });
}

/** A refused purchase left everything as it was: the buyer's money, the artwork unsold, nobody paid, no purchase. */
async function expectNothingMoved(sale: Sale, purchaseId: string, payees: readonly string[]): Promise<void> {
  expect(await wallet(sale.buyerWalletId)).toMatchObject({ balanceCents: 1_000n, reservedCents: 0n, reservations: {} });
  expect(await artwork(sale.artworkId)).toMatchObject({ status: "Active", ownerId: sale.artistId, listing: { priceCents: 100n } });
  expect(await purchase(purchaseId)).toEqual({ status: "Empty" });
  for (const payee of payees) {
    const paid = (await walletEvents(payee)).filter((e) => e.type === "PaymentReceived");
    expect(paid, `payments into ${payee}`).toEqual([]);
  }
}

describe("an atomic purchase whose payouts would overflow a payee's wallet", () => {
  it("is refused with the reason, and nothing moves", async () => {
    const sale = await saleOf(100n);
    await payeeHolding(sale.artistId, maxBalanceCents - 10n);
    const purchaseId = unique("purchase");
    await expect(buy(sale, 100n, purchaseId)).rejects.toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: `payment of 100 would take the balance of wallet ${sale.artistId} to ${maxBalanceCents + 90n}, above the maximum ${maxBalanceCents}`,
    });
    await expectNothingMoved(sale, purchaseId, [sale.artistId]);
    expect(await wallet(sale.artistId)).toMatchObject({ balanceCents: maxBalanceCents - 10n });
    await expect(c.queries.getPurchase({ purchaseId, minPosition: BigInt(await app.streams.store.head()) })).rejects.toMatchObject({
      code: Code.NotFound,
    });
  });

  it("pays no one when only a royalty recipient's wallet is full", async () => {
    const curator = unique("curator");
    const sale = await saleOf(100n, [{ recipientId: curator, basisPoints: 1_000 }]);
    await payeeHolding(curator, maxBalanceCents - 9n);
    await payeeHolding(sale.artistId, 5n);
    const purchaseId = unique("purchase");
    await expect(buy(sale, 100n, purchaseId)).rejects.toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: expect.stringContaining(`would take the balance of wallet ${curator} to`) as unknown,
    });
    await expectNothingMoved(sale, purchaseId, [curator, sale.artistId]);
  });

  it("lets a deposit racing the purchase either win, the purchase then refused, or lose to the purchase, which completes", async () => {
    // The seller's wallet has room for the price (100) or for the deposit (120), not for both.
    const rounds = await Promise.all(
      [0, 1, 2, 5, 10, 20].map(async (delayMs) => {
        const sale = await saleOf(100n);
        await payeeHolding(sale.artistId, maxBalanceCents - 150n);
        const purchaseId = unique("purchase");
        const bought = buy(sale, 100n, purchaseId).then(() => true, (err: unknown) => {
          expect(err).toMatchObject({ code: Code.FailedPrecondition });
          return false;
        });
        await sleep(delayMs);
        const deposited = await c.wallet
          .deposit({ metadata: meta(), walletId: sale.artistId, amountCents: 120n })
          .then(() => true, () => false);
        return { sale, purchaseId, deposited, bought: await bought };
      }),
    );
    for (const { sale, purchaseId, deposited, bought } of rounds) {
      expect(deposited, "exactly one of the deposit and the purchase got in").toBe(!bought);
      const seller = await wallet(sale.artistId);
      if (deposited) {
        await expectNothingMoved(sale, purchaseId, [sale.artistId]);
        expect(seller).toMatchObject({ balanceCents: maxBalanceCents - 30n });
      } else {
        expect(await purchase(purchaseId)).toMatchObject({ status: "Completed" });
        expect(seller).toMatchObject({ balanceCents: maxBalanceCents - 50n });
        expect(await artwork(sale.artworkId)).toMatchObject({ ownerId: sale.buyerId });
        expect(await wallet(sale.buyerWalletId)).toMatchObject({ balanceCents: 900n, reservedCents: 0n });
      }
    }
  });
});

describe("a purchase made step by step by the process manager", () => {
  it("keeps the room it made for a payout from a deposit arriving before the payment", async () => {
    const reactor = app.reactors[0];
    if (reactor === undefined) throw new Error("the app runs no process manager");
    // The process manager is stopped (as a leader losing its lease would stop) as soon as the room is made in the
    // seller's wallet; the step under way finishes, so the artwork is taken and the payment not yet made. A round
    // in which the payment got in before the stop proves nothing, and another is played.
    let between = false;
    for (let round = 0; round < 5 && !between; round++) {
      const sale = await saleOf(100n);
      await payeeHolding(sale.artistId, maxBalanceCents - 150n);
      const subject = `ev.wallet.${sale.artistId}`;
      const fromSeq = (await app.streams.store.lastSequence(subject)) + 1;
      const commits = app.streams.store.follow({ fromSeq, subjectFilter: subject, signal: AbortSignal.timeout(5_000) });
      const purchaseId = unique("purchase");
      const started = startStepByStep(app.pipeline, { purchaseId, ...sale, priceCents: 100n });
      let roomMade = false;
      for await (const commit of commits) {
        roomMade = commit.events.some((record) => decodeWalletEvent(record).type === "PaymentExpected");
        if (roomMade) break;
      }
      expect(roomMade, `room made in wallet ${sale.artistId} within 5 s`).toBe(true);
      await reactor.stop();
      try {
        await started;
        const paid = (await walletEvents(sale.artistId)).some((e) => e.type === "PaymentReceived");
        if (!paid) {
          expect((await purchase(purchaseId)).status).toBe("ArtworkTaken");
          // 51 would fit without the room made for the 100 of the payout.
          await expect(c.wallet.deposit({ metadata: meta(), walletId: sale.artistId, amountCents: 51n })).rejects.toMatchObject({
            code: Code.FailedPrecondition,
            rawMessage:
              `deposit of 51 would take the balance of wallet ${sale.artistId} to ${maxBalanceCents - 99n} ` +
              `with 100 more expected from purchases, above the maximum ${maxBalanceCents}`,
          });
          between = true;
        }
      } finally {
        reactor.start();
      }
      expect((await outcome(purchaseId)).status).toBe("Completed");
      expect(await wallet(sale.artistId)).toMatchObject({ balanceCents: maxBalanceCents - 50n, expectedCents: 0n });
    }
    expect(between, "a deposit arrived between the room made and the payment in one of the rounds").toBe(true);
  });
});
