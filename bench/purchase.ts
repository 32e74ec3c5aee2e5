/**
 * `commands.purchase`, of the commands suite: atomic BuyArtwork over gRPC, each purchase one command that
 * commits to the artwork, the buyer's wallet, three royalty recipients' wallets, the seller's payout wallet and
 * the purchase (7 commits and the command's record: one atomic batch of 8 messages).
 *
 * - value: purchases per second at 64 in flight, each slot buying from its own artist (its artworks, its
 *   wallets) with its own buyer's wallet, so that slots never contend for an aggregate: the capacity.
 * - baseline: raw atomic batches of 8 commit-sized messages, one batch per purchase, 64 in flight, on the same
 *   stream from the server's process: the JetStream write a purchase ends in, without group commit.
 * - extra `p50Ms`, `p99Ms`: latency of purchases sent open-loop at half the measured capacity, the figure the
 *   in-zone budget (p99 ≤ 15 ms) is about; `capacityP50Ms`, `capacityP99Ms`: latency at capacity;
 *   `aloneP50Ms`, `aloneP99Ms`: one purchase at a time, the floor (on one file-backed server, about the disk
 *   sync nats-server makes for every atomic batch).
 *
 * The purchases come from a generated gRPC client in the bench's own process: a few hundred calls a second cost
 * the client little, unlike the unary and stream figures, which need the load tool.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { App } from "../app.js";
import { ArtworkService } from "../gen/foldline/marketplace/v1/artwork_service_pb.js";
import { PurchaseService } from "../gen/foldline/marketplace/v1/purchase_service_pb.js";
import { WalletService } from "../gen/foldline/marketplace/v1/wallet_service_pb.js";
import { createJsPublisher, type BatchMessage } from "../streams/js-publisher.js";
import { medianRound, type GrpcLoadResult } from "./grpc-load.js";
import { commitSizedPayload } from "./payloads.js";
import { drive, envInt, percentile, round, sorted, type Op } from "./measure.js";
import type { Emit } from "./run.js";

const concurrency = 64;
const royaltyRecipients = 3;
const priceCents = 1_000n;
/** A purchase's batch: the record and seven commits. */
const messagesPerPurchase = 8;
const p99TargetMs = 15;
/** Purchases made one at a time, from the first slot. */
const aloneCount = 100;

interface Slot {
  readonly buyerWallet: string;
  readonly payoutWallet: string;
  /** Listed artworks not bought yet. */
  readonly artworks: string[];
}

interface Clients {
  readonly wallet: Client<typeof WalletService>;
  readonly artwork: Client<typeof ArtworkService>;
  readonly purchases: Client<typeof PurchaseService>;
}

/** Measures and emits `commands.purchase`; `rounds` alternated rounds of `roundMs`, as the rest of the suite. */
export async function purchase(
  app: App,
  emit: Emit,
  options: { readonly rounds: number; readonly roundMs: number; readonly log: (message: string) => void },
): Promise<void> {
  const { rounds, roundMs, log } = options;
  const transport = createGrpcTransport({ baseUrl: app.url });
  const c: Clients = {
    wallet: createClient(WalletService, transport),
    artwork: createClient(ArtworkService, transport),
    purchases: createClient(PurchaseService, transport),
  };
  // Enough listings for every round at up to this many purchases a second per slot, and the half-capacity run.
  const perSlot = envInt("BENCH_PURCHASES_PER_SLOT", Math.ceil(((rounds + 2) * roundMs) / 1_000) * 12);
  log(`purchase: listing ${perSlot * concurrency} artworks`);
  const slots = await Promise.all(Array.from({ length: concurrency }, (_, i) => prepareSlot(c, i, perSlot + (i === 0 ? aloneCount : 0))));

  const buy = async (slot: Slot): Promise<void> => {
    const artworkId = slot.artworks.pop();
    if (artworkId === undefined) throw new Error("purchase: out of listed artworks; raise BENCH_PURCHASES_PER_SLOT");
    await c.purchases.buyArtwork({
      metadata: { commandId: randomUUID() },
      purchaseId: randomUUID(),
      artworkId,
      buyerId: slot.buyerWallet,
      buyerWalletId: slot.buyerWallet,
      priceCents,
    });
  };
  const capacityRound = async (): Promise<GrpcLoadResult> => {
    const latencies: number[] = [];
    const { ops, rate } = await drive(slots.map((slot): Op => () => buy(slot)), roundMs, latencies);
    return result(ops, rate, roundMs, latencies);
  };

  // The raw write underneath: one atomic batch of as many commit-sized messages per purchase.
  const publisher = createJsPublisher(app.streams.nc, 5_000);
  const payload = commitSizedPayload();
  const runId = Date.now().toString(36);
  const batches: Op[] = Array.from({ length: concurrency }, (_, i) => {
    const messages: BatchMessage[] = Array.from({ length: messagesPerPurchase }, (_, k) => ({ subject: `ev.raw.${runId}-${i}-${k}`, data: payload }));
    return async () => {
      await publisher.publishBatch(messages);
    };
  });
  const rawRound = async (): Promise<GrpcLoadResult> => {
    const latencies: number[] = [];
    const { ops, rate } = await drive(batches, roundMs, latencies);
    return result(ops, rate, roundMs, latencies);
  };

  try {
    await drive(slots.map((slot): Op => () => buy(slot)), 500);
    await drive(batches, 500);
    const candidate: GrpcLoadResult[] = [];
    const baseline: GrpcLoadResult[] = [];
    for (let r = 1; r <= rounds; r++) {
      baseline.push(await rawRound());
      candidate.push(await capacityRound());
      log(`purchase: round ${r}/${rounds} raw batches ${baseline.at(-1)?.perSecond.toFixed(0)}/s, purchases ${candidate.at(-1)?.perSecond.toFixed(0)}/s`);
    }
    const capacity = medianRound(candidate);
    const raw = medianRound(baseline);

    // One purchase at a time, from one slot: what a purchase costs when nothing waits.
    const alone: number[] = [];
    const first = slots[0] as Slot;
    for (let i = 0; i < aloneCount; i++) {
      const t0 = performance.now();
      await buy(first);
      alone.push(performance.now() - t0);
    }
    const aloneSorted = sorted(alone);
    log(`purchase: one at a time p50 ${percentile(aloneSorted, 50).toFixed(2)} ms, p99 ${percentile(aloneSorted, 99).toFixed(2)} ms`);

    // Open loop at half the capacity: a purchase is sent every 1/rate s whatever the answers, round-robin over
    // the slots, and each one's latency is recorded.
    const rate = capacity.perSecond / 2;
    const latencies: number[] = [];
    const inFlight: Promise<void>[] = [];
    const start = performance.now();
    for (let i = 0; performance.now() - start < roundMs; i++) {
      const due = start + (i * 1_000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      const slot = slots[i % slots.length] as Slot;
      const t0 = performance.now();
      inFlight.push(buy(slot).then(() => void latencies.push(performance.now() - t0)));
    }
    await Promise.all(inFlight);
    const atHalf = sorted(latencies);
    log(`purchase: at ${rate.toFixed(0)}/s p50 ${percentile(atHalf, 50).toFixed(2)} ms, p99 ${percentile(atHalf, 99).toFixed(2)} ms`);

    emit({
      bench: "commands.purchase",
      value: round(capacity.perSecond, 1),
      unit: "purchases/s",
      baseline: round(raw.perSecond, 1),
      ratio: round(capacity.perSecond / raw.perSecond, 3),
      extra: {
        p50Ms: round(percentile(atHalf, 50), 3),
        p99Ms: round(percentile(atHalf, 99), 3),
        p99TargetMs,
        halfCapacityPerSecond: round(rate, 1),
        capacityP50Ms: round(capacity.p50Ms, 3),
        capacityP99Ms: round(capacity.p99Ms, 3),
        aloneP50Ms: round(percentile(aloneSorted, 50), 3),
        aloneP99Ms: round(percentile(aloneSorted, 99), 3),
        rawBatchP50Ms: round(raw.p50Ms, 3),
        concurrency,
        royaltyRecipients,
        messagesPerPurchase,
        rounds: candidate.map((r) => round(r.perSecond, 1)),
        baselineRounds: baseline.map((r) => round(r.perSecond, 1)),
        roundMs,
      },
    });
  } finally {
    publisher.close();
  }
}

/**
 * Slot `i`: an artist with a payout wallet and three royalty recipients' wallets, `count` artworks of theirs
 * listed at the price, and a buyer's wallet that can pay for all of them.
 */
async function prepareSlot(c: Clients, i: number, count: number): Promise<Slot> {
  const id = (what: string): string => `bench-${what}-${i}-${randomUUID().slice(0, 8)}`;
  const artist = id("artist");
  const payoutWallet = id("payout");
  const buyerWallet = id("buyer");
  const royaltyWallets = Array.from({ length: royaltyRecipients }, (_, k) => id(`royalty${k}`));
  for (const walletId of [payoutWallet, buyerWallet, ...royaltyWallets]) {
    await c.wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId, ownerId: walletId });
  }
  await c.wallet.deposit({ metadata: { commandId: randomUUID() }, walletId: buyerWallet, amountCents: priceCents * BigInt(count) });
  const royaltySplit = royaltyWallets.map((recipientId, k) => ({ recipientId, basisPoints: 500 + 100 * k }));
  const artworks: string[] = [];
  for (let k = 0; k < count; k++) {
    const artworkId = id(`art${k}`);
    await c.artwork.mintArtwork({ metadata: { commandId: randomUUID() }, artworkId, artistId: artist, title: "bench", contentHash: "h", royaltySplit });
    await c.artwork.listForSale({ metadata: { commandId: randomUUID(), actor: artist }, artworkId, priceCents, payoutWalletId: payoutWallet });
    artworks.push(artworkId);
  }
  return { buyerWallet, payoutWallet, artworks };
}

function result(ops: number, rate: number, ms: number, latencies: number[]): GrpcLoadResult {
  const s = sorted(latencies);
  return { completed: ops, errors: 0, durationMs: ms, perSecond: rate, p50Ms: percentile(s, 50), p99Ms: percentile(s, 99), clientCpuMs: 0 };
}
