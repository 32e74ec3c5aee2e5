// Commands over several aggregates (the pipeline's transact, through BuyArtwork): racing buyers on two API
// servers, a state cached on one server that another has moved, and repeats of a command id on both servers and
// after a restart. The stream is read directly to count what was stored.
import { randomUUID } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createAsyncIterable } from "@connectrpc/connect/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { BuyArtworkResponseSchema, type BuyArtworkResponse } from "../gen/foldline/marketplace/v1/purchase_service_pb.js";
import { clients, startTestApp, type Clients } from "./harness/app.js";
import { startTestNats, type TestNats } from "./harness/nats.js";
import { marketplaceFromStream } from "./harness/purchases.js";

let nats: TestNats;
let one: App;
let two: App;

beforeAll(async () => {
  nats = await startTestNats();
  one = await startTestApp(nats);
  two = await startTestApp(nats);
});
afterAll(async () => {
  // nats-server is stopped even when foldline never started (setup failed) or fails to close.
  try {
    await Promise.all([one.close(), two.close()]);
  } finally {
    await nats.stop();
  }
});

const unique = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`;
const meta = (commandId = randomUUID()) => ({ commandId });
const bytes = (res: BuyArtworkResponse): Buffer => Buffer.from(toBinary(BuyArtworkResponseSchema, res));

/** Opens a wallet holding `cents` (none: just opened). */
async function walletHolding(c: Clients, cents: bigint): Promise<string> {
  const walletId = unique("w");
  await c.wallet.openWallet({ metadata: meta(), walletId, ownerId: walletId });
  if (cents > 0n) await c.wallet.deposit({ metadata: meta(), walletId, amountCents: cents });
  return walletId;
}

/** An artwork listed at `priceCents`, with a 10 % royalty to a wallet of its own and the proceeds to the artist's. */
async function listed(c: Clients, priceCents: bigint): Promise<{ artworkId: string; artist: string; royalty: string }> {
  const artworkId = unique("art");
  const [artist, royalty] = [await walletHolding(c, 0n), await walletHolding(c, 0n)];
  const royaltySplit = [{ recipientId: royalty, basisPoints: 1_000 }];
  await c.artwork.mintArtwork({ metadata: meta(), artworkId, artistId: artist, title: "t", contentHash: "h", royaltySplit });
  await c.artwork.listForSale({ metadata: { ...meta(), actor: artist }, artworkId, priceCents, payoutWalletId: artist });
  return { artworkId, artist, royalty };
}

/** The commits whose metadata carries `commandId`, read from the stream. */
async function commitsOf(commandId: string): Promise<string[]> {
  const subjects: string[] = [];
  for await (const commit of one.streams.store.readAll()) if (commit.metadata.commandId === commandId) subjects.push(commit.subject);
  return subjects;
}

describe("a command over several aggregates", () => {
  it("lets exactly one of 24 buyers racing on two servers buy an artwork, and moves the money of that one only", async () => {
    const [a, b] = [clients(one.url), clients(two.url)];
    const { artworkId, artist, royalty } = await listed(a, 1_000n);
    const buyers = await Promise.all(Array.from({ length: 24 }, () => walletHolding(a, 5_000n)));
    const results = await Promise.allSettled(
      buyers.map((walletId, i) =>
        (i % 2 === 0 ? a : b).purchases.buyArtwork({
          metadata: meta(),
          purchaseId: unique("p"),
          artworkId,
          buyerId: walletId,
          buyerWalletId: walletId,
          priceCents: 1_000n,
        }),
      ),
    );
    const won = results.flatMap((r, i) => (r.status === "fulfilled" ? [buyers[i] ?? ""] : []));
    expect(won).toHaveLength(1);
    for (const r of results) {
      if (r.status === "fulfilled") continue;
      // Lost to the winner: the artwork is no longer listed, or others kept winning the race to the stream.
      expect([Code.FailedPrecondition, Code.Aborted]).toContain(ConnectError.from(r.reason).code);
    }
    const m = await marketplaceFromStream(one.streams.store);
    expect(m.artworks.get(artworkId)).toMatchObject({ ownerId: won[0], listing: null });
    for (const walletId of buyers) {
      expect(m.wallets.get(walletId)).toMatchObject({ balanceCents: walletId === won[0] ? 4_000n : 5_000n, reservedCents: 0n });
    }
    expect(m.wallets.get(artist)).toMatchObject({ balanceCents: 900n });
    expect(m.wallets.get(royalty)).toMatchObject({ balanceCents: 100n });
    expect(m.sales.filter((s) => s.artworkId === artworkId)).toHaveLength(1);
  });

  it("never refuses from a state cached on one server that another server has moved, and decides again after a conflict", async () => {
    const [a, b] = [clients(one.url), clients(two.url)];
    const { artworkId } = await listed(a, 500n);
    // Server one caches the buyer's wallet holding 100; server two then deposits 1 000 into it.
    const buyer = await walletHolding(a, 100n);
    await b.wallet.deposit({ metadata: meta(), walletId: buyer, amountCents: 1_000n });
    const bought = await a.purchases.buyArtwork({ metadata: meta(), purchaseId: unique("p"), artworkId, buyerId: buyer, buyerWalletId: buyer, priceCents: 500n });
    expect(bought.events.map((e) => e.event.case)).toEqual(["started", "artworkTaken", "completed"]);

    // Both caches hold the new owner's artwork; server two relists it, server one's cache still says sold.
    await b.artwork.listForSale({ metadata: { ...meta(), actor: buyer }, artworkId, priceCents: 700n, payoutWalletId: buyer });
    const second = await walletHolding(b, 1_000n);
    // And server one's cache of the second buyer's wallet is behind a deposit through server two.
    await a.wallet.deposit({ metadata: meta(), walletId: second, amountCents: 1n });
    await b.wallet.deposit({ metadata: meta(), walletId: second, amountCents: 2n });
    const conflicts = one.pipeline.stats.conflicts;
    const again = await a.purchases.buyArtwork({ metadata: meta(), purchaseId: unique("p"), artworkId, buyerId: second, buyerWalletId: second, priceCents: 700n });
    expect(again.events.map((e) => e.event.case)).toEqual(["started", "artworkTaken", "completed"]);
    // The stale artwork was found out before the refusal it would have caused; the stale wallet met its
    // condition in the append, and the purchase was decided again.
    expect(one.pipeline.stats.conflicts).toBeGreaterThan(conflicts);
    const m = await marketplaceFromStream(one.streams.store);
    expect(m.wallets.get(second)).toMatchObject({ balanceCents: 1_003n - 700n });
    expect(m.wallets.get(buyer)).toMatchObject({ balanceCents: 1_100n - 500n + 630n });
  });

  it("answers a command id sent to two servers at once, and again on a new server, with one batch and the same bytes", async () => {
    const [a, b] = [clients(one.url), clients(two.url)];
    const { artworkId } = await listed(a, 300n);
    const buyer = await walletHolding(a, 1_000n);
    const request = { metadata: meta(), purchaseId: unique("p"), artworkId, buyerId: buyer, buyerWalletId: buyer, priceCents: 300n };
    const [first, second] = await Promise.all([a.purchases.buyArtwork(request), b.purchases.buyArtwork(request)]);
    expect(bytes(second)).toEqual(bytes(first));
    expect(await commitsOf(request.metadata.commandId)).toEqual([
      `ev.artwork.${artworkId}`,
      `ev.wallet.${buyer}`,
      expect.stringMatching(/^ev\.wallet\./) as unknown,
      expect.stringMatching(/^ev\.wallet\./) as unknown,
      `ev.purchase.${request.purchaseId}`,
    ]);

    await using fresh = await startTestApp(nats);
    expect(bytes(await clients(fresh.url).purchases.buyArtwork(request))).toEqual(bytes(first));
    // The same id with another request is a reuse, whatever the state.
    await expect(clients(fresh.url).purchases.buyArtwork({ ...request, priceCents: 301n })).rejects.toMatchObject({
      code: Code.AlreadyExists,
      rawMessage: `command id ${request.metadata.commandId} was already used for a different request`,
    });
    expect(await commitsOf(request.metadata.commandId)).toHaveLength(5);
    const m = await marketplaceFromStream(one.streams.store);
    expect(m.wallets.get(buyer)).toMatchObject({ balanceCents: 700n });
  });

  it("buys through the Execute stream as through the unary call, refusals answered in place", async () => {
    const a = clients(one.url);
    const { artworkId } = await listed(a, 400n);
    const buyer = await walletHolding(a, 1_000n);
    const purchaseId = unique("p");
    const buy = (priceCents: bigint) => ({
      command: {
        case: "buyArtwork" as const,
        value: { metadata: meta(), purchaseId: unique("p"), artworkId, buyerId: buyer, buyerWalletId: buyer, priceCents },
      },
    });
    const first = buy(400n);
    first.command.value.purchaseId = purchaseId;
    const answers = [];
    for await (const answer of a.commands.execute(createAsyncIterable([buy(399n), first]))) answers.push(answer.outcome);
    expect(answers[0]).toMatchObject({ case: "error", value: { code: "failed_precondition" } });
    expect(answers[1]?.case).toBe("buyArtwork");
    if (answers[1]?.case !== "buyArtwork") return;
    expect(answers[1].value.result?.aggregateId).toBe(purchaseId);
    expect(answers[1].value.events.map((e) => e.event.case)).toEqual(["started", "artworkTaken", "completed"]);
  });

  it("completes 32 concurrent purchases on one server that all pay one royalty wallet, none given up", async () => {
    const a = clients(one.url);
    const foundation = await walletHolding(a, 0n);
    const sales = await Promise.all(
      Array.from({ length: 32 }, async () => {
        const artworkId = unique("art");
        const [artist, buyer] = [await walletHolding(a, 0n), await walletHolding(a, 1_000n)];
        const royaltySplit = [{ recipientId: foundation, basisPoints: 1_000 }];
        await a.artwork.mintArtwork({ metadata: meta(), artworkId, artistId: artist, title: "t", contentHash: "h", royaltySplit });
        await a.artwork.listForSale({ metadata: { ...meta(), actor: artist }, artworkId, priceCents: 1_000n, payoutWalletId: artist });
        return { artworkId, buyer };
      }),
    );
    const results = await Promise.allSettled(
      sales.map(({ artworkId, buyer }) =>
        a.purchases.buyArtwork({ metadata: meta(), purchaseId: unique("p"), artworkId, buyerId: buyer, buyerWalletId: buyer, priceCents: 1_000n }),
      ),
    );
    expect(results.filter((r) => r.status === "rejected").map((r) => String(r.reason))).toEqual([]);
    const m = await marketplaceFromStream(one.streams.store);
    expect(m.wallets.get(foundation)).toMatchObject({ balanceCents: 32n * 100n });
  });
});
