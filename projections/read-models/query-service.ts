import { Buffer } from "node:buffer";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import type { KV } from "@nats-io/kv";
import { PayoutSchema, RoyaltyShareSchema } from "../../gen/foldline/marketplace/v1/events_pb.js";
import {
  ArtworkViewSchema,
  MonthlyRoyaltiesSchema,
  OwnershipChangeSchema,
  PurchaseState,
  PurchaseViewSchema,
  QueryService,
  SaleViewSchema,
  WalletViewSchema,
  type ArtworkView,
  type SaleView,
  type ListArtworksRequest,
} from "../../gen/foldline/marketplace/v1/query_service_pb.js";
import { quoteInput } from "../../commands/bounded-text.js";
import { InvalidRequest } from "../../commands/errors.js";
import { toProtoKind } from "../../commands/marketplace/payout-messages.js";
import { requireId } from "../../commands/request-fields.js";
import type { PayoutKind } from "../../domain/artwork/types.js";
import type { PurchaseStage } from "../../domain/purchase/types.js";
import { unavailableOr } from "../../streams/nats-errors.js";
import { NotInReadModel, ReadModelBehind } from "../errors.js";
import type { AtPosition, ReadModelReader } from "../read-model-reader.js";
import type { ReadModelDb } from "../read-model-db.js";
import { artworkKvProjection } from "./artwork-kv.js";
import type { ArtworkRow, ProvenanceRow } from "./artworks.js";
import type { PurchaseRow, RoyaltyEarningsRow, SaleRow } from "./sales.js";
import type { WalletRow } from "./wallets.js";

/** The longest a query waits for its read model to reach the position it asked for. */
const maxWaitMs = 10_000;

/** ListArtworks' page size when the request gives none, and the largest it accepts. */
const defaultPageSize = 50;
const maxPageSize = 100;

/** Registers QueryService, answered by `reader` from the SQLite read models and from `kv`, the KV read models. */
export function registerQueries(router: ConnectRouter, reader: ReadModelReader, kv: KV): void {
  /** Reads `projection` at `position` or later, within the call's time. */
  const read = <T>(
    projection: string,
    position: bigint,
    context: HandlerContext,
    query: (db: ReadModelDb) => T,
  ): Promise<AtPosition<T>> => reader.read(projection, minPosition(position), waitBudget(context), query);

  router.service(QueryService, {
    async getWallet(req, context) {
      const walletId = requireId("wallet_id", req.walletId);
      const { value: row, position } = await read("wallets", req.minPosition, context, (db) =>
        db.prepare<[string], WalletRow>("SELECT * FROM wallets WHERE wallet_id = ?").get(walletId),
      );
      if (row === undefined) throw new NotInReadModel(`wallet ${walletId}`, position);
      return {
        position: BigInt(position),
        wallet: create(WalletViewSchema, {
          walletId: row.wallet_id,
          ownerId: row.owner_id,
          balanceCents: row.balance_cents,
          reservedCents: row.reserved_cents,
          availableCents: row.balance_cents - row.reserved_cents,
          version: row.version,
          lastPosition: row.position,
        }),
      };
    },

    async getArtwork(req, context) {
      const artworkId = requireId("artwork_id", req.artworkId);
      const { value: row, position } = await read("artworks", req.minPosition, context, (db) =>
        db.prepare<[string], ArtworkRow>("SELECT * FROM artworks WHERE artwork_id = ?").get(artworkId),
      );
      if (row === undefined) throw new NotInReadModel(`artwork ${artworkId}`, position);
      return { position: BigInt(position), artwork: artworkView(row) };
    },

    async listArtworks(req, context) {
      const filter = listFilter(req.filter);
      const pageSize = requirePageSize(req.pageSize);
      const after = req.pageToken === "" ? "" : pageTokenCursor(req.pageToken, filter);
      // One row past the page says whether another page follows, so that the last page has no token.
      const { value: rows, position } = await read("artworks", req.minPosition, context, (db) =>
        db
          .prepare<[string, string, number], ArtworkRow>(
            `SELECT * FROM artworks WHERE ${filter.column} = ? AND artwork_id > ? ORDER BY artwork_id LIMIT ?`,
          )
          .all(filter.value, after, pageSize + 1),
      );
      const page = rows.slice(0, pageSize);
      const last = page.at(-1);
      return {
        position: BigInt(position),
        artworks: page.map(artworkView),
        nextPageToken: rows.length > pageSize && last !== undefined ? pageToken(filter, last.artwork_id) : "",
      };
    },

    async getProvenance(req, context) {
      const artworkId = requireId("artwork_id", req.artworkId);
      // Both in one transaction: an artwork the read model holds always has its mint here.
      const { value, position } = await read("artworks", req.minPosition, context, (db) => {
        const exists = db.prepare<[string], { found: bigint }>("SELECT 1 AS found FROM artworks WHERE artwork_id = ?").get(artworkId);
        if (exists === undefined) return undefined;
        return db
          .prepare<[string], Omit<ProvenanceRow, "artwork_id">>(
            "SELECT position, version, from_owner_id, to_owner_id, at FROM provenance WHERE artwork_id = ? ORDER BY position",
          )
          .all(artworkId);
      });
      if (value === undefined) throw new NotInReadModel(`artwork ${artworkId}`, position);
      return {
        position: BigInt(position),
        changes: value.map((row) =>
          create(OwnershipChangeSchema, {
            position: row.position,
            version: row.version,
            fromOwnerId: row.from_owner_id ?? "",
            toOwnerId: row.to_owner_id,
            at: timestampFromDate(new Date(row.at)),
          }),
        ),
      };
    },

    async getPurchase(req, context) {
      const purchaseId = requireId("purchase_id", req.purchaseId);
      const { value: row, position } = await read("sales", req.minPosition, context, (db) =>
        db.prepare<[string], PurchaseRow>("SELECT * FROM purchases WHERE purchase_id = ?").get(purchaseId),
      );
      if (row === undefined) throw new NotInReadModel(`purchase ${purchaseId}`, position);
      return {
        position: BigInt(position),
        purchase: create(PurchaseViewSchema, {
          purchaseId: row.purchase_id,
          artworkId: row.artwork_id,
          buyerId: row.buyer_id,
          buyerWalletId: row.buyer_wallet_id,
          priceCents: row.price_cents,
          state: purchaseStates[row.stage],
          reason: row.reason,
          startedAt: timestampFromDate(new Date(row.started_at)),
          lastPosition: row.position,
        }),
      };
    },

    async listSales(req, context) {
      const since = req.since === undefined ? 0 : timestampMs(req.since, "since");
      const until = req.until === undefined ? Number.MAX_SAFE_INTEGER : timestampMs(req.until, "until");
      if (until < since) throw new InvalidRequest("until must not be before since");
      const pageSize = requirePageSize(req.pageSize);
      const range = `${since}-${until}`;
      const after = req.pageToken === "" ? 0 : salesCursor(req.pageToken, range);
      const { value: rows, position } = await read("sales", req.minPosition, context, (db) =>
        db
          .prepare<[number, number, number, number], SaleRow>(
            "SELECT * FROM sales WHERE sold_at_ms >= ? AND sold_at_ms < ? AND position > ? ORDER BY position LIMIT ?",
          )
          .all(since, until, after, pageSize + 1),
      );
      const page = rows.slice(0, pageSize);
      const last = page.at(-1);
      return {
        position: BigInt(position),
        sales: page.map(saleView),
        nextPageToken:
          rows.length > pageSize && last !== undefined ? Buffer.from(`sales:${range}:${last.position}`).toString("base64url") : "",
      };
    },

    async getRoyaltyEarnings(req, context) {
      const recipientId = requireId("recipient_id", req.recipientId);
      const from = req.fromMonth === "" ? "0000-01" : requireMonth("from_month", req.fromMonth);
      const to = req.toMonth === "" ? "9999-12" : requireMonth("to_month", req.toMonth);
      const { value: rows, position } = await read("sales", req.minPosition, context, (db) =>
        db
          .prepare<[string, string, string], RoyaltyEarningsRow>(
            "SELECT * FROM royalty_earnings WHERE recipient_id = ? AND month >= ? AND month <= ? ORDER BY month",
          )
          .all(recipientId, from, to),
      );
      return {
        position: BigInt(position),
        months: rows.map((r) =>
          create(MonthlyRoyaltiesSchema, { month: r.month, amountCents: r.amount_cents, payments: Number(r.payments) }),
        ),
        totalCents: rows.reduce((sum, r) => sum + r.amount_cents, 0n),
      };
    },

    async getRoyaltyInfo(req, context) {
      const artworkId = requireId("artwork_id", req.artworkId);
      const wanted = minPosition(req.minPosition);
      const started = Date.now();
      const deadline = started + waitBudget(context);
      // The projector writes an artwork's entries before the checkpoint that covers them: entries read after the
      // checkpoint reflect at least its position.
      let position = await kvCheckpoint(kv);
      while (position < wanted) {
        if (Date.now() >= deadline) throw new ReadModelBehind("artworks (KV)", position, wanted, Date.now() - started);
        await new Promise((resolve) => setTimeout(resolve, 5));
        position = await kvCheckpoint(kv);
      }
      const [artist, royalty] = await Promise.all([
        kvJson<{ artistId: string }>(kv, `artwork.${artworkId}.artist`),
        kvJson<{ royaltySplit: { recipientId: string; basisPoints: number }[] }>(kv, `artwork.${artworkId}.royalty`),
      ]);
      if (artist === undefined || royalty === undefined) throw new NotInReadModel(`artwork ${artworkId}`, position);
      return { artworkId, artistId: artist.artistId, royaltySplit: royalty.royaltySplit, position: BigInt(position) };
    },
  });
}

async function kvJson<T>(kv: KV, key: string): Promise<T | undefined> {
  try {
    const entry = await kv.get(key);
    return entry === null || entry.operation !== "PUT" ? undefined : entry.json<T>();
  } catch (err) {
    throw unavailableOr(err, `a read of ${key}`);
  }
}

async function kvCheckpoint(kv: KV): Promise<number> {
  return (await kvJson<{ position: number }>(kv, `checkpoint.${artworkKvProjection.name}`))?.position ?? 0;
}

const purchaseStates: Readonly<Record<PurchaseStage, PurchaseState>> = {
  Started: PurchaseState.STARTED,
  FundsReserved: PurchaseState.FUNDS_RESERVED,
  PayoutsQuoted: PurchaseState.PAYOUTS_QUOTED,
  ArtworkTaken: PurchaseState.ARTWORK_TAKEN,
  Completed: PurchaseState.COMPLETED,
  Compensating: PurchaseState.COMPENSATING,
  Failed: PurchaseState.FAILED,
};

function saleView(row: SaleRow): SaleView {
  const payouts = JSON.parse(row.payouts) as readonly { recipientId: string; amountCents: string; kind: PayoutKind }[];
  return create(SaleViewSchema, {
    purchaseId: row.purchase_id,
    artworkId: row.artwork_id,
    sellerId: row.seller_id,
    buyerId: row.buyer_id,
    priceCents: row.price_cents,
    royaltiesCents: row.royalties_cents,
    payouts: payouts.map((p) =>
      create(PayoutSchema, { recipientId: p.recipientId, amountCents: BigInt(p.amountCents), kind: toProtoKind(p.kind) }),
    ),
    soldAt: timestampFromDate(new Date(row.sold_at)),
    position: row.position,
  });
}

function timestampMs(ts: Timestamp, field: string): number {
  const ms = Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6);
  if (!Number.isSafeInteger(ms) || ms < 0 || ts.nanos < 0 || ts.nanos > 999_999_999) {
    throw new InvalidRequest(`${field} is not a time foldline can hold: ${ts.seconds}s ${ts.nanos}ns`);
  }
  return ms;
}

const monthPattern = /^\d{4}-(0[1-9]|1[0-2])$/;

function requireMonth(field: string, value: string): string {
  if (!monthPattern.test(value)) throw new InvalidRequest(`${field} must be a month as YYYY-MM, got ${quoteInput(value)}`);
  return value;
}

// A sales page token is base64url of `sales:<since ms>-<until ms>:<last position>`: the range is in it, so that a
// token cannot carry a cursor over to another range.
function salesCursor(token: string, range: string): number {
  const text = Buffer.from(token, "base64url").toString();
  const match = /^sales:(\d+-\d+):(\d{1,16})$/.exec(text);
  if (match === null || Buffer.from(text).toString("base64url") !== token) {
    throw new InvalidRequest("page_token is malformed: pass next_page_token of the previous response as it is");
  }
  if (match[1] !== range) throw new InvalidRequest("page_token belongs to another range: pass the same since and until as for the first page");
  return Number(match[2]);
}

function artworkView(row: ArtworkRow): ArtworkView {
  const split = JSON.parse(row.royalty_split) as readonly { recipientId: string; basisPoints: number }[];
  return create(ArtworkViewSchema, {
    artworkId: row.artwork_id,
    artistId: row.artist_id,
    ownerId: row.owner_id,
    title: row.title,
    contentHash: row.content_hash,
    royaltySplit: split.map(({ recipientId, basisPoints }) => create(RoyaltyShareSchema, { recipientId, basisPoints })),
    listedPriceCents: row.listed_price_cents ?? undefined,
    burned: row.burned === 1n,
    mintedAt: timestampFromDate(new Date(row.minted_at)),
    version: row.version,
    lastPosition: row.position,
  });
}

/** Which artworks ListArtworks pages through: a column of `artworks` and the id it must hold. */
interface ListFilter {
  readonly kind: "owner" | "artist";
  readonly column: "owner_id" | "artist_id";
  readonly value: string;
}

function listFilter(filter: ListArtworksRequest["filter"]): ListFilter {
  switch (filter.case) {
    case "ownerId":
      return { kind: "owner", column: "owner_id", value: requireId("owner_id", filter.value) };
    case "artistId":
      return { kind: "artist", column: "artist_id", value: requireId("artist_id", filter.value) };
    case undefined:
      throw new InvalidRequest("a filter is required: owner_id or artist_id");
  }
}

function requirePageSize(pageSize: number): number {
  if (pageSize === 0) return defaultPageSize;
  if (pageSize < 1 || pageSize > maxPageSize) {
    throw new InvalidRequest(`page_size must be 1..${maxPageSize} (0 for ${defaultPageSize}), got ${pageSize}`);
  }
  return pageSize;
}

// A page token is base64url of `<kind>:<filter id>:<last artwork id>`. Ids hold no ':', so the split is exact;
// the filter is in it so that a token cannot carry a cursor over to another owner's or artist's list.
const tokenPattern = /^(owner|artist):([A-Za-z0-9_-]{1,64}):([A-Za-z0-9_-]{1,64})$/;

function pageToken(filter: ListFilter, lastArtworkId: string): string {
  return Buffer.from(`${filter.kind}:${filter.value}:${lastArtworkId}`).toString("base64url");
}

/** The last artwork id of the page before, from a token that `pageToken` made for the same filter. */
function pageTokenCursor(token: string, filter: ListFilter): string {
  const text = Buffer.from(token, "base64url").toString();
  const match = tokenPattern.exec(text);
  // Node decodes base64url leniently; re-encoding tells a token we made from one that only decodes.
  if (match === null || Buffer.from(text).toString("base64url") !== token) {
    throw new InvalidRequest("page_token is malformed: pass next_page_token of the previous response as it is");
  }
  const [, kind, value, lastArtworkId] = match;
  if (kind !== filter.kind || value !== filter.value || lastArtworkId === undefined) {
    throw new InvalidRequest("page_token belongs to another filter: pass the same owner_id or artist_id as for the first page");
  }
  return lastArtworkId;
}

function minPosition(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidRequest(`min_position ${value} is beyond any stream position`);
  return Number(value);
}

/** The call's remaining time, at most {@link maxWaitMs}. */
function waitBudget(context: HandlerContext): number {
  return Math.min(maxWaitMs, context.timeoutMs() ?? maxWaitMs);
}
