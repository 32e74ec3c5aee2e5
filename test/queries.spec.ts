import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import {
  PurchaseState,
  type ArtworkView,
  type ListArtworksRequest,
  type OwnershipChange,
  type SaleView,
} from "../gen/foldline/marketplace/v1/query_service_pb.js";
import { startTestBed, type Clients, type TestBed } from "./harness/app.js";
import {
  artworkTraffic,
  artworksFromStream,
  provenanceFromStream,
  type ArtworkRow,
  type ProvenanceRow,
} from "./harness/artworks.js";

let bed: TestBed;
let app: App;
let c: Clients;
// What the traffic of beforeAll left, folded from the stream by the domain; later tests use actors of their own.
let rows: ArtworkRow[];
let provenance: ProvenanceRow[];
let minPosition: bigint;

beforeAll(async () => {
  ({ app, c } = bed = await startTestBed("foldline-queries-", (dir) => ({ PROJECTORS: "embedded", READ_MODEL_DB: join(dir, "read-models.sqlite") })));
  const tally = await artworkTraffic(c, "aw", 16);
  minPosition = BigInt(tally.position);
  rows = await artworksFromStream(app.streams.store);
  provenance = await provenanceFromStream(app.streams.store);
});
afterAll(async () => {
  await bed.close();
});

const as = (actor: string) => ({ commandId: randomUUID(), actor });
const unique = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`;
const positionOf = (answer: { readonly result?: { readonly position: bigint } | undefined }): bigint =>
  answer.result?.position ?? 0n;

/** A view in the shape of the read model's row, to compare with what the domain folds from the stream. */
function asRow(view: ArtworkView | undefined): ArtworkRow {
  if (view === undefined) throw new Error("the response holds no artwork");
  return {
    artwork_id: view.artworkId,
    artist_id: view.artistId,
    owner_id: view.ownerId,
    title: view.title,
    content_hash: view.contentHash,
    royalty_split: JSON.stringify(view.royaltySplit.map(({ recipientId, basisPoints }) => ({ recipientId, basisPoints }))),
    listed_price_cents: view.listedPriceCents ?? null,
    burned: view.burned ? 1n : 0n,
    minted_at: view.mintedAt === undefined ? "absent" : timestampDate(view.mintedAt).toISOString(),
    version: view.version,
    position: view.lastPosition,
  };
}

function asProvenanceRow(artworkId: string, change: OwnershipChange): ProvenanceRow {
  return {
    artwork_id: artworkId,
    position: change.position,
    version: change.version,
    from_owner_id: change.fromOwnerId === "" ? null : change.fromOwnerId,
    to_owner_id: change.toOwnerId,
    at: change.at === undefined ? "absent" : timestampDate(change.at).toISOString(),
  };
}

/** Every page of a list, following next_page_token to the end. */
async function allPages(filter: ListArtworksRequest["filter"], pageSize: number, at: bigint): Promise<ArtworkView[][]> {
  const pages: ArtworkView[][] = [];
  let pageToken = "";
  do {
    const res = await c.queries.listArtworks({ filter, pageSize, pageToken, minPosition: at });
    expect(res.position).toBeGreaterThanOrEqual(at);
    pages.push(res.artworks);
    pageToken = res.nextPageToken;
    expect(pages.length).toBeLessThan(100);
  } while (pageToken !== "");
  return pages;
}

/** Mints an artwork by `artistId`; returns its position. */
async function mint(artworkId: string, artistId: string): Promise<bigint> {
  const res = await c.artwork.mintArtwork({
    metadata: as(artistId),
    artworkId,
    artistId,
    title: `Work ${artworkId}`,
    contentHash: `sha256:${artworkId}`,
    royaltySplit: [{ recipientId: artistId, basisPoints: 500 }],
  });
  return positionOf(res);
}

describe("artwork queries", () => {
  it("GetArtwork answers each artwork as the domain folds it from the stream: owner, split, listing, burn", async () => {
    const mine = rows.filter((r) => r.artwork_id.startsWith("aw-"));
    expect(mine).toHaveLength(16);
    // The traffic reached every case, so that the equality below means something.
    expect(mine.filter((r) => r.burned === 1n).length).toBeGreaterThan(0);
    expect(mine.filter((r) => r.listed_price_cents !== null).length).toBeGreaterThan(0);
    expect(mine.filter((r) => r.burned === 0n && r.listed_price_cents === null).length).toBeGreaterThan(0);
    expect(mine.filter((r) => r.owner_id !== r.artist_id).length).toBeGreaterThan(0);
    expect(mine.filter((r) => r.royalty_split.includes("studio")).length).toBeGreaterThan(0);
    expect(mine.filter((r) => r.royalty_split.includes("estate")).length).toBeGreaterThan(0);

    const answers = await Promise.all(rows.map((r) => c.queries.getArtwork({ artworkId: r.artwork_id, minPosition })));
    for (const answer of answers) expect(answer.position).toBeGreaterThanOrEqual(minPosition);
    expect(answers.map((a) => asRow(a.artwork))).toEqual(rows);
  });

  it("ListArtworks pages through an owner's and an artist's artworks, two at a time, with no gap or repeat", async () => {
    const filters: ListArtworksRequest["filter"][] = [
      ...[...new Set(rows.map((r) => r.owner_id))].map((value) => ({ case: "ownerId" as const, value })),
      ...[...new Set(rows.map((r) => r.artist_id))].map((value) => ({ case: "artistId" as const, value })),
    ];
    let mostPages = 0;
    for (const filter of filters) {
      const expected = rows.filter((r) => (filter.case === "ownerId" ? r.owner_id : r.artist_id) === filter.value);
      const pages = await allPages(filter, 2, minPosition);
      mostPages = Math.max(mostPages, pages.length);
      // Full pages until the last, which is the only one without a next token (allPages stops at it).
      for (const page of pages.slice(0, -1)) expect(page).toHaveLength(2);
      expect(pages.at(-1)?.length).toBeGreaterThan(0);
      expect(pages.flat().map(asRow), `${filter.case} ${filter.value}`).toEqual(expected);
    }
    expect(mostPages).toBeGreaterThanOrEqual(3);
    // Burned artworks are listed too.
    expect(rows.some((r) => r.burned === 1n)).toBe(true);

    const nobody = await c.queries.listArtworks({ filter: { case: "ownerId", value: "nobody" }, minPosition });
    expect(nobody).toMatchObject({ artworks: [], nextPageToken: "" });
  });

  it("ListArtworks pages 50 by default and 1..100 on request", async () => {
    const artist = unique("many");
    await Promise.all(Array.from({ length: 53 }, (_, i) => mint(`${artist}-${String(i).padStart(2, "0")}`, artist)));
    const at = BigInt(await app.streams.store.head());
    const filter = { case: "artistId" as const, value: artist };
    const ids = Array.from({ length: 53 }, (_, i) => `${artist}-${String(i).padStart(2, "0")}`);

    expect((await allPages(filter, 0, at)).map((page) => page.map((a) => a.artworkId))).toEqual([ids.slice(0, 50), ids.slice(50)]);
    expect((await allPages(filter, 100, at)).map((page) => page.length)).toEqual([53]);
    expect((await allPages(filter, 53, at)).map((page) => page.length)).toEqual([53]);
    expect((await allPages(filter, 1, at)).flat().map((a) => a.artworkId)).toEqual(ids);

    for (const pageSize of [101, -1, 1_000]) {
      await expect(c.queries.listArtworks({ filter, pageSize })).rejects.toMatchObject({ code: Code.InvalidArgument });
    }
  });

  it("ListArtworks refuses a request without a filter and a page token of another filter or malformed", async () => {
    const owner = unique("own");
    const artist = unique("art");
    const ids = [`${owner}-a`, `${owner}-b`, `${owner}-c`];
    // The owner minted them: the artist filter with the same id lists the same artworks, and only the token's
    // kind tells the two filters apart.
    await Promise.all([...ids.map((id) => mint(id, owner)), mint(`${artist}-a`, artist)]);
    const at = BigInt(await app.streams.store.head());
    const first = await c.queries.listArtworks({ filter: { case: "ownerId", value: owner }, pageSize: 2, minPosition: at });
    expect(first.artworks.map((a) => a.artworkId)).toEqual(ids.slice(0, 2));
    const { nextPageToken: pageToken } = first;
    expect(pageToken).not.toBe("");

    // With its own filter the token carries on where the first page stopped.
    const second = await c.queries.listArtworks({ filter: { case: "ownerId", value: owner }, pageSize: 2, pageToken });
    expect(second).toMatchObject({ nextPageToken: "", artworks: [{ artworkId: ids[2] }] });

    const refused = async (request: Parameters<Clients["queries"]["listArtworks"]>[0]): Promise<void> => {
      await expect(c.queries.listArtworks(request), JSON.stringify(request)).rejects.toMatchObject({ code: Code.InvalidArgument });
    };
    await refused({ filter: { case: "artistId", value: owner }, pageToken });
    await refused({ filter: { case: "ownerId", value: artist }, pageToken });
    await refused({ filter: { case: "artistId", value: artist }, pageToken });
    await refused({ pageToken });
    await refused({});
    await refused({ filter: { case: "ownerId", value: "" } });
    await refused({ filter: { case: "artistId", value: "not an id" } });
    const forged = (text: string): string => Buffer.from(text).toString("base64url");
    for (const bad of ["!!!", `${pageToken}!`, `${pageToken}=`, forged(`owner:${owner}`), forged(`owners:${owner}:${ids[0] ?? ""}`), forged(`owner:${owner}:`)]) {
      await refused({ filter: { case: "ownerId", value: owner }, pageToken: bad });
    }
  });

  it("GetProvenance lists the mint and every transfer in stream order, at the positions the commands answered", async () => {
    const grouped = new Map<string, ProvenanceRow[]>();
    for (const row of provenance) grouped.set(row.artwork_id, [...(grouped.get(row.artwork_id) ?? []), row]);
    expect(grouped.size).toBe(rows.length);
    expect([...grouped.values()].some((changes) => changes.length >= 3)).toBe(true);
    for (const [artworkId, expected] of grouped) {
      const res = await c.queries.getProvenance({ artworkId, minPosition });
      expect(res.changes.map((change) => asProvenanceRow(artworkId, change))).toEqual(expected);
    }

    const artworkId = unique("prov");
    const [artist, b, d] = [unique("p"), unique("p"), unique("p")];
    const minted = await mint(artworkId, artist);
    await c.artwork.listForSale({ metadata: as(artist), artworkId, priceCents: 700n, payoutWalletId: artist });
    const toB = await c.artwork.transferOwnership({ metadata: as(artist), artworkId, newOwnerId: b });
    await c.artwork.setRoyaltySplit({ metadata: as(artist), artworkId, royaltySplit: [] });
    await c.artwork.listForSale({ metadata: as(b), artworkId, priceCents: 900n, payoutWalletId: b });
    const toD = await c.artwork.transferOwnership({ metadata: as(b), artworkId, newOwnerId: d });
    const back = await c.artwork.transferOwnership({ metadata: as(d), artworkId, newOwnerId: artist });
    await c.artwork.burnArtwork({ metadata: as(artist), artworkId });

    const res = await c.queries.getProvenance({ artworkId, minPosition: positionOf(back) });
    expect(res.changes.map(({ position, version, fromOwnerId, toOwnerId }) => ({ position, version, fromOwnerId, toOwnerId }))).toEqual([
      { position: minted, version: 1n, fromOwnerId: "", toOwnerId: artist },
      { position: positionOf(toB), version: 3n, fromOwnerId: artist, toOwnerId: b },
      { position: positionOf(toD), version: 6n, fromOwnerId: b, toOwnerId: d },
      { position: positionOf(back), version: 7n, fromOwnerId: d, toOwnerId: artist },
    ]);
    const times = res.changes.map((change) => (change.at === undefined ? 0 : timestampDate(change.at).getTime()));
    expect(times.every((t, i) => t > 0 && t >= (times[i - 1] ?? 0))).toBe(true);

    // The artwork itself: burned by its last owner, with the split emptied and no listing left.
    const { artwork } = await c.queries.getArtwork({ artworkId, minPosition: positionOf(back) });
    expect(artwork).toMatchObject({ ownerId: artist, burned: true, royaltySplit: [], version: 8n });
    expect(artwork?.listedPriceCents).toBeUndefined();
  });

  it("answers NOT_FOUND for an unknown artwork, INVALID_ARGUMENT for a bad id, DEADLINE_EXCEEDED for a position not reached", async () => {
    const res = await c.queries.getArtwork({ artworkId: rows[0]?.artwork_id ?? "", minPosition });
    const at = res.position;
    await expect(c.queries.getArtwork({ artworkId: "nothing-here", minPosition: at })).rejects.toMatchObject({
      code: Code.NotFound,
      rawMessage: `artwork nothing-here does not exist at position ${at}`,
    });
    await expect(c.queries.getProvenance({ artworkId: "nothing-here", minPosition: at })).rejects.toMatchObject({
      code: Code.NotFound,
      rawMessage: `artwork nothing-here does not exist at position ${at}`,
    });
    for (const artworkId of ["", "not an id"]) {
      await expect(c.queries.getArtwork({ artworkId })).rejects.toMatchObject({ code: Code.InvalidArgument });
      await expect(c.queries.getProvenance({ artworkId })).rejects.toMatchObject({ code: Code.InvalidArgument });
    }
    await expect(c.queries.getArtwork({ artworkId: "a", minPosition: 2n ** 63n })).rejects.toMatchObject({ code: Code.InvalidArgument });

    const ahead = BigInt((await app.streams.store.head()) + 1_000);
    const artworkId = rows[0]?.artwork_id ?? "";
    const started = Date.now();
    const late = await Promise.allSettled([
      c.queries.getArtwork({ artworkId, minPosition: ahead }, { timeoutMs: 300 }),
      c.queries.getProvenance({ artworkId, minPosition: ahead }, { timeoutMs: 300 }),
      c.queries.listArtworks({ filter: { case: "ownerId", value: "dee" }, minPosition: ahead }, { timeoutMs: 300 }),
    ]);
    expect(late.map((r) => (r.status === "rejected" ? (r.reason as { code?: unknown }).code : "answered"))).toEqual([
      Code.DeadlineExceeded,
      Code.DeadlineExceeded,
      Code.DeadlineExceeded,
    ]);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("reads its own writes: 50 transfers, each followed at once by queries at its position, see the new owner", async () => {
    const artworkId = unique("ryw");
    const owners = [unique("o"), unique("o"), unique("o")];
    const first = owners[0] ?? "";
    const minted = await mint(artworkId, first);
    let owner = first;
    const seen: { owner: string; listed: boolean; previousListed: boolean; version: bigint; lastPosition: bigint }[] = [];
    const expected: typeof seen = [];
    const positions = [minted];
    for (let i = 1; i <= 50; i++) {
      const next = owners[i % owners.length] ?? "";
      const res = await c.artwork.transferOwnership({ metadata: as(owner), artworkId, newOwnerId: next });
      const position = positionOf(res);
      positions.push(position);
      const [view, byNew, byPrevious] = await Promise.all([
        c.queries.getArtwork({ artworkId, minPosition: position }),
        c.queries.listArtworks({ filter: { case: "ownerId", value: next }, minPosition: position }),
        c.queries.listArtworks({ filter: { case: "ownerId", value: owner }, minPosition: position }),
      ]);
      seen.push({
        owner: view.artwork?.ownerId ?? "",
        listed: byNew.artworks.some((a) => a.artworkId === artworkId),
        previousListed: byPrevious.artworks.some((a) => a.artworkId === artworkId),
        version: view.artwork?.version ?? 0n,
        lastPosition: view.artwork?.lastPosition ?? 0n,
      });
      expected.push({ owner: next, listed: true, previousListed: false, version: BigInt(i + 1), lastPosition: position });
      owner = next;
    }
    expect(seen).toEqual(expected);
    const history = await c.queries.getProvenance({ artworkId, minPosition: positions.at(-1) ?? 0n });
    expect(history.changes.map((change) => change.position)).toEqual(positions);
  });
});

describe("purchase queries", () => {
  it("answers purchases completed and lists their sales and royalties, by time range and page", async () => {
    const artist = unique("artist");
    const curator = unique("curator");
    const buyer = unique("buyer");
    const artworkId = unique("sold");
    await c.artwork.mintArtwork({
      metadata: as(artist),
      artworkId,
      artistId: artist,
      title: "Sold thrice",
      contentHash: "sha256:00",
      royaltySplit: [{ recipientId: curator, basisPoints: 333 }],
    });
    const wallet = unique("wallet");
    await c.wallet.openWallet({ metadata: as(buyer), walletId: wallet, ownerId: buyer });
    await c.wallet.deposit({ metadata: as(buyer), walletId: wallet, amountCents: 10_000n });
    // Payouts go only into wallets someone opened: the artist's proceeds and the curator's royalties.
    const artistWallet = unique("wallet");
    await c.wallet.openWallet({ metadata: as(artist), walletId: artistWallet, ownerId: artist });
    await c.wallet.openWallet({ metadata: as(curator), walletId: curator, ownerId: curator });

    // Sold by the artist to the buyer, by the buyer to a second buyer, and back: three sales, three royalties.
    const second = unique("buyer");
    const secondWallet = unique("wallet");
    await c.wallet.openWallet({ metadata: as(second), walletId: secondWallet, ownerId: second });
    await c.wallet.deposit({ metadata: as(second), walletId: secondWallet, amountCents: 10_000n });
    const prices = [1_001n, 2_002n, 3_003n];
    const rounds = [
      { seller: artist, payTo: artistWallet, buyer, wallet },
      { seller: buyer, payTo: wallet, buyer: second, wallet: secondWallet },
      { seller: second, payTo: secondWallet, buyer, wallet },
    ];
    const purchaseIds: string[] = [];
    for (const [i, round] of rounds.entries()) {
      const priceCents = prices[i] ?? 0n;
      await c.artwork.listForSale({ metadata: as(round.seller), artworkId, priceCents, payoutWalletId: round.payTo });
      const purchaseId = unique("purchase");
      purchaseIds.push(purchaseId);
      const bought = await c.purchases.buyArtwork({
        metadata: as(round.buyer),
        purchaseId,
        artworkId,
        buyerId: round.buyer,
        buyerWalletId: round.wallet,
        priceCents,
      });
      // Completed by the time it is answered: the purchase is one atomic command.
      expect(bought.events.map((e) => e.event.case)).toEqual(["started", "artworkTaken", "completed"]);
      const { purchase: view } = await c.queries.getPurchase({ purchaseId, minPosition: positionOf(bought) });
      expect(view).toMatchObject({ purchaseId, artworkId, buyerId: round.buyer, priceCents, state: PurchaseState.COMPLETED, reason: "" });
      expect(view?.lastPosition).toBe(positionOf(bought));
    }
    const { purchase: last } = await c.queries.getPurchase({ purchaseId: purchaseIds[2] ?? "" });
    const at = last?.lastPosition ?? 0n;
    const owner = await c.queries.getArtwork({ artworkId, minPosition: at });
    expect(owner.artwork?.ownerId).toBe(buyer);

    // All three sales, a page at a time, in order, with their payouts adding up to the price.
    const sales: SaleView[] = [];
    let pageToken = "";
    do {
      const page = await c.queries.listSales({ pageSize: 1, pageToken, minPosition: at });
      sales.push(...page.sales);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    const ours = sales.filter((s) => s.artworkId === artworkId);
    expect(ours.map((s) => [s.purchaseId, s.sellerId, s.buyerId, s.priceCents])).toEqual(
      rounds.map((r, i) => [purchaseIds[i], r.seller, r.buyer, prices[i]]),
    );
    for (const sale of ours) {
      expect(sale.payouts.reduce((sum, p) => sum + p.amountCents, 0n)).toBe(sale.priceCents);
      expect(sale.royaltiesCents).toBe((sale.priceCents * 333n) / 10_000n);
    }

    // A time range from the second sale on holds the second and third only; until excludes its own instant.
    const secondAt = ours[1]?.soldAt;
    const ranged = await c.queries.listSales({ since: secondAt, minPosition: at });
    expect(ranged.sales.filter((s) => s.artworkId === artworkId).map((s) => s.purchaseId)).toEqual(purchaseIds.slice(1));
    const before = await c.queries.listSales({ until: secondAt, minPosition: at });
    expect(before.sales.filter((s) => s.artworkId === artworkId).map((s) => s.purchaseId)).toEqual(purchaseIds.slice(0, 1));

    // The curator's royalties this month: 33 + 66 + 99 cents in three payments; nothing before this month.
    const month = new Date().toISOString().slice(0, 7);
    const earnings = await c.queries.getRoyaltyEarnings({ recipientId: curator, minPosition: at });
    expect(earnings.months.map((m) => [m.month, m.amountCents, m.payments])).toEqual([[month, 198n, 3]]);
    expect(earnings.totalCents).toBe(198n);
    const earlier = await c.queries.getRoyaltyEarnings({ recipientId: curator, toMonth: "2000-01", minPosition: at });
    expect(earlier).toMatchObject({ months: [], totalCents: 0n });

    // The money: the buyer paid 1001 and 3003 from its wallet, and received 2002 - 66 for its sale into the wallet
    // its listing named, the same one; the artist's proceeds went into the wallet it named.
    const buyerWallet = await c.queries.getWallet({ walletId: wallet, minPosition: at });
    expect(buyerWallet.wallet?.balanceCents).toBe(10_000n - 1_001n - 3_003n + 2_002n - 66n);
    const proceeds = await c.queries.getWallet({ walletId: artistWallet, minPosition: at });
    expect(proceeds.wallet).toMatchObject({ ownerId: artist, balanceCents: 1_001n - 33n });
    await expect(c.queries.getWallet({ walletId: buyer, minPosition: at })).rejects.toMatchObject({ code: Code.NotFound });
    const curatorWallet = await c.queries.getWallet({ walletId: curator, minPosition: at });
    expect(curatorWallet.wallet).toMatchObject({ ownerId: curator, balanceCents: 198n, reservedCents: 0n });
  });

  it("refuses a purchase that cannot be paid for, or whose artwork is not for sale, with the reason, and changes nothing", async () => {
    const artist = unique("artist");
    const buyer = unique("buyer");
    const artworkId = unique("unsold");
    const minted = await mint(artworkId, artist);
    await c.wallet.openWallet({ metadata: as(artist), walletId: artist, ownerId: artist });
    const listed = await c.artwork.listForSale({ metadata: as(artist), artworkId, priceCents: 500n, payoutWalletId: artist });
    const wallet = unique("wallet");
    await c.wallet.openWallet({ metadata: as(buyer), walletId: wallet, ownerId: buyer });
    const deposited = await c.wallet.deposit({ metadata: as(buyer), walletId: wallet, amountCents: 499n });
    const buy = (purchaseId: string, priceCents: bigint) =>
      c.purchases.buyArtwork({ metadata: as(buyer), purchaseId, artworkId, buyerId: buyer, buyerWalletId: wallet, priceCents });
    const [poor, cheap] = [unique("purchase"), unique("purchase")];
    await expect(buy(poor, 500n)).rejects.toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "insufficient funds: available 499, requested 500",
    });
    await expect(buy(cheap, 400n)).rejects.toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: `artwork ${artworkId} is listed at 500 cents; purchase ${cheap} offered 400`,
    });
    // Nothing moved: the money is the buyer's, the artwork the artist's and still listed, no purchase exists.
    const at = positionOf(deposited);
    const w = await c.queries.getWallet({ walletId: wallet, minPosition: at });
    expect(w.wallet).toMatchObject({ balanceCents: 499n, reservedCents: 0n, availableCents: 499n, version: 2n });
    const { artwork } = await c.queries.getArtwork({ artworkId, minPosition: at });
    expect(artwork).toMatchObject({ ownerId: artist, listedPriceCents: 500n, version: 2n });
    expect(positionOf(listed)).toBeGreaterThan(minted);
    for (const purchaseId of [poor, cheap]) {
      await expect(c.queries.getPurchase({ purchaseId, minPosition: at })).rejects.toMatchObject({ code: Code.NotFound });
    }
  });

  it("refuses malformed purchase queries and answers NOT_FOUND for an unknown purchase", async () => {
    await expect(c.queries.getPurchase({ purchaseId: "nope-never" })).rejects.toMatchObject({ code: Code.NotFound });
    await expect(c.queries.getRoyaltyEarnings({ recipientId: "r", fromMonth: "2026-13" })).rejects.toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: 'from_month must be a month as YYYY-MM, got "2026-13"',
    });
    const since = { seconds: 10n, nanos: 0 };
    await expect(c.queries.listSales({ since, until: { seconds: 5n, nanos: 0 } })).rejects.toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: "until must not be before since",
    });
    const token = Buffer.from("sales:0-9007199254740991:1").toString("base64url");
    await expect(c.queries.listSales({ since, pageToken: token })).rejects.toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: "page_token belongs to another range: pass the same since and until as for the first page",
    });
    await expect(c.queries.listSales({ pageToken: "bad!" })).rejects.toMatchObject({ code: Code.InvalidArgument });
  });
});
