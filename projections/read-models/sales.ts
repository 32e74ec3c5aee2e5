import { decodeArtworkEvent } from "../../commands/marketplace/artwork-events.js";
import { decodePurchaseEvent } from "../../commands/marketplace/purchase-events.js";
import { decodeWalletEvent } from "../../commands/marketplace/wallet-events.js";
import type { Payout } from "../../domain/artwork/types.js";
import { stageAfter } from "../../domain/purchase/evolve.js";
import type { PurchaseStage } from "../../domain/purchase/types.js";
import { ArtworkSoldSchema, PaymentReceivedSchema } from "../../gen/foldline/marketplace/v1/events_pb.js";
import type { Projection } from "../projector.js";

const purchasePrefix = "ev.purchase.";
const artworkPrefix = "ev.artwork.";
const walletPrefix = "ev.wallet.";

/** A row of the `purchases` table, as better-sqlite3 returns it (integers as bigint). */
export interface PurchaseRow {
  readonly purchase_id: string;
  readonly artwork_id: string;
  readonly buyer_id: string;
  readonly buyer_wallet_id: string;
  readonly price_cents: bigint;
  readonly stage: PurchaseStage;
  /** Why it failed or is compensating; empty otherwise. */
  readonly reason: string;
  /** ISO 8601, the start's recorded time. */
  readonly started_at: string;
  readonly version: bigint;
  readonly position: bigint;
}

/** A row of the `sales` table: one artwork taken by a purchase. */
export interface SaleRow {
  /** The stream sequence of the sale's commit. */
  readonly position: bigint;
  readonly purchase_id: string;
  readonly artwork_id: string;
  readonly seller_id: string;
  readonly buyer_id: string;
  readonly price_cents: bigint;
  readonly royalties_cents: bigint;
  /** JSON: `[{"recipientId","amountCents","kind"}]`, amounts as decimal strings, royalties first. */
  readonly payouts: string;
  /** ISO 8601, the sale's recorded time. */
  readonly sold_at: string;
  /** The same time in milliseconds since the epoch, for ranges. */
  readonly sold_at_ms: bigint;
}

/** A row of the `royalty_earnings` table: one recipient's royalties paid in one month. */
export interface RoyaltyEarningsRow {
  readonly recipient_id: string;
  /** "YYYY-MM", UTC, of the payment's recorded time. */
  readonly month: string;
  readonly amount_cents: bigint;
  readonly payments: bigint;
}

// Decoding only the events this read model uses keeps it cheap on the wallets' and artworks' many others.
const soldType = ArtworkSoldSchema.typeName;
const paidType = PaymentReceivedSchema.typeName;

/**
 * The `sales` read model, three tables fed by purchases:
 * - `purchases`: one row per purchase, its request and its stage (`Started` … `Completed` / `Failed`, with the
 *   reason), from the purchase's own events;
 * - `sales`: one row per artwork taken by a purchase (`ArtworkSold`), with its price, seller, buyer, payouts and
 *   the royalties among them, keyed by the sale's position;
 * - `royalty_earnings`: per recipient and month (UTC), the royalties paid into their wallet (`PaymentReceived`
 *   of kind royalty) and how many payments made them up.
 */
export const salesProjection: Projection = {
  name: "sales",

  migrate(db) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS purchases (
        purchase_id TEXT PRIMARY KEY,
        artwork_id TEXT NOT NULL,
        buyer_id TEXT NOT NULL,
        buyer_wallet_id TEXT NOT NULL,
        price_cents INTEGER NOT NULL,
        stage TEXT NOT NULL,
        reason TEXT NOT NULL,
        started_at TEXT NOT NULL,
        version INTEGER NOT NULL,
        position INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE IF NOT EXISTS sales (
        position INTEGER PRIMARY KEY,
        purchase_id TEXT NOT NULL UNIQUE,
        artwork_id TEXT NOT NULL,
        seller_id TEXT NOT NULL,
        buyer_id TEXT NOT NULL,
        price_cents INTEGER NOT NULL,
        royalties_cents INTEGER NOT NULL,
        payouts TEXT NOT NULL,
        sold_at TEXT NOT NULL,
        sold_at_ms INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS sales_by_time ON sales (sold_at_ms, position);
      CREATE TABLE IF NOT EXISTS royalty_earnings (
        recipient_id TEXT NOT NULL,
        month TEXT NOT NULL,
        amount_cents INTEGER NOT NULL,
        payments INTEGER NOT NULL,
        PRIMARY KEY (recipient_id, month)
      ) STRICT;
    `);
  },

  prepare(db) {
    const start = db.prepare<[string, string, string, string, bigint, string]>(
      `INSERT INTO purchases (purchase_id, artwork_id, buyer_id, buyer_wallet_id, price_cents, stage, reason, started_at,
         version, position)
       VALUES (?, ?, ?, ?, ?, 'Started', '', ?, 0, 0)
       ON CONFLICT (purchase_id) DO NOTHING`,
    );
    const advance = db.prepare<[string, string, string]>("UPDATE purchases SET stage = ?, reason = ? WHERE purchase_id = ?");
    const stamp = db.prepare<[number, number, string]>("UPDATE purchases SET version = ?, position = ? WHERE purchase_id = ?");
    const sale = db.prepare<[number, string, string, string, string, bigint, bigint, string, string, number]>(
      `INSERT INTO sales (position, purchase_id, artwork_id, seller_id, buyer_id, price_cents, royalties_cents, payouts,
         sold_at, sold_at_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const earn = db.prepare<[string, string, bigint]>(
      `INSERT INTO royalty_earnings (recipient_id, month, amount_cents, payments) VALUES (?, ?, ?, 1)
       ON CONFLICT (recipient_id, month) DO UPDATE SET amount_cents = amount_cents + excluded.amount_cents,
         payments = payments + 1`,
    );

    return (commit) => {
      const { subject } = commit;
      const at = commit.metadata.recordedAt;
      if (subject.startsWith(purchasePrefix)) {
        const purchaseId = subject.slice(purchasePrefix.length);
        for (const record of commit.events) {
          const event = decodePurchaseEvent(record);
          if (event.type === "PurchaseStarted") {
            const { artworkId, buyerId, buyerWalletId, priceCents } = event;
            start.run(purchaseId, artworkId, buyerId, buyerWalletId, priceCents, at.toISOString());
          } else {
            const reason = event.type === "PurchaseFailed" || event.type === "PurchaseCompensating" ? event.reason : "";
            advance.run(stageAfter[event.type], reason, purchaseId);
          }
        }
        stamp.run(commit.metadata.aggregateVersion, commit.seq, purchaseId);
      } else if (subject.startsWith(artworkPrefix)) {
        for (const record of commit.events) {
          if (record.type !== soldType) continue;
          const event = decodeArtworkEvent(record);
          if (event.type !== "ArtworkSold") continue;
          const royalties = event.payouts.reduce((sum, p) => (p.kind === "Royalty" ? sum + p.amountCents : sum), 0n);
          const artworkId = subject.slice(artworkPrefix.length);
          const { purchaseId, sellerId, buyerId, priceCents } = event;
          sale.run(commit.seq, purchaseId, artworkId, sellerId, buyerId, priceCents, royalties, payoutsJson(event.payouts),
            at.toISOString(), at.getTime());
        }
      } else if (subject.startsWith(walletPrefix)) {
        for (const record of commit.events) {
          if (record.type !== paidType) continue;
          const event = decodeWalletEvent(record);
          if (event.type !== "PaymentReceived" || event.kind !== "Royalty") continue;
          earn.run(subject.slice(walletPrefix.length), at.toISOString().slice(0, 7), event.amountCents);
        }
      }
    };
  },
};

// Amounts as strings: JSON numbers would pass int64 cents through a float.
function payoutsJson(payouts: readonly Payout[]): string {
  return JSON.stringify(payouts.map(({ recipientId, amountCents, kind }) => ({ recipientId, amountCents: amountCents.toString(), kind })));
}
