import { createHash, randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { decodeArtworkEvent } from "../../commands/marketplace/artwork-events.js";
import { artworkDecider } from "../../domain/artwork/decider.js";
import type { ArtworkState, RoyaltyShare } from "../../domain/artwork/types.js";
import type { ReadModelDb } from "../../projections/read-model-db.js";
import type { ArtworkRow, ProvenanceRow } from "../../projections/read-models/artworks.js";
import type { EventStore } from "../../streams/event-store.js";
import type { Clients } from "./app.js";

const subjectPrefix = "ev.artwork.";

export type { ArtworkRow, ProvenanceRow };

type Active = Extract<ArtworkState, { status: "Active" }>;

/**
 * Every minted artwork of the stream, folded by the domain itself: what the read model must equal. A burned
 * artwork's state keeps only its artist and owner; its title, content hash and split are those it had when burned.
 */
export async function artworksFromStream(store: EventStore): Promise<ArtworkRow[]> {
  const artworks = new Map<
    string,
    { state: ArtworkState; lastActive?: Active; mintedAt?: string; version: number; position: number }
  >();
  for await (const commit of store.readAll({ subjectFilter: `${subjectPrefix}>` })) {
    const id = commit.subject.slice(subjectPrefix.length);
    const artwork = artworks.get(id) ?? { state: artworkDecider.initialState, version: 0, position: 0 };
    for (const record of commit.events) {
      const before = artwork.state;
      artwork.state = artworkDecider.evolve(before, decodeArtworkEvent(record));
      if (before.status === "Empty" && artwork.state.status !== "Empty") {
        artwork.mintedAt = commit.metadata.recordedAt.toISOString();
      }
      if (artwork.state.status === "Active") artwork.lastActive = artwork.state;
    }
    artwork.version = commit.metadata.aggregateVersion;
    artwork.position = commit.seq;
    artworks.set(id, artwork);
  }
  const rows: ArtworkRow[] = [];
  for (const [id, { state, lastActive, mintedAt, version, position }] of artworks) {
    if (state.status === "Empty" || lastActive === undefined || mintedAt === undefined) continue;
    rows.push({
      artwork_id: id,
      artist_id: state.artistId,
      owner_id: state.ownerId,
      title: lastActive.title,
      content_hash: lastActive.contentHash,
      royalty_split: JSON.stringify(lastActive.royaltySplit),
      listed_price_cents: state.status === "Active" ? (state.listing?.priceCents ?? null) : null,
      burned: state.status === "Burned" ? 1n : 0n,
      minted_at: mintedAt,
      version: BigInt(version),
      position: BigInt(position),
    });
  }
  return rows.sort(byArtwork);
}

/** Every mint and transfer of the stream, as provenance rows, ordered by artwork then position. */
export async function provenanceFromStream(store: EventStore): Promise<ProvenanceRow[]> {
  const rows: ProvenanceRow[] = [];
  for await (const commit of store.readAll({ subjectFilter: `${subjectPrefix}>` })) {
    const stamp = {
      artwork_id: commit.subject.slice(subjectPrefix.length),
      position: BigInt(commit.seq),
      version: BigInt(commit.metadata.aggregateVersion),
    };
    const at = commit.metadata.recordedAt.toISOString();
    for (const record of commit.events) {
      const event = decodeArtworkEvent(record);
      if (event.type === "ArtworkMinted") {
        rows.push({ ...stamp, from_owner_id: null, to_owner_id: event.artistId, at });
      } else if (event.type === "OwnershipTransferred") {
        rows.push({ ...stamp, from_owner_id: event.fromOwnerId, to_owner_id: event.toOwnerId, at });
      }
    }
  }
  return rows.sort(byArtworkThenPosition);
}

/** The `artworks` read model's rows, in the order of {@link artworksFromStream}. */
export function artworksFromReadModel(db: ReadModelDb): ArtworkRow[] {
  return db.prepare<[], ArtworkRow>("SELECT * FROM artworks").all().sort(byArtwork);
}

/** The `provenance` read model's rows, in the order of {@link provenanceFromStream}. */
export function provenanceFromReadModel(db: ReadModelDb): ProvenanceRow[] {
  return db.prepare<[], ProvenanceRow>("SELECT * FROM provenance").all().sort(byArtworkThenPosition);
}

// Code-unit order on both sides: SQLite's BINARY collation and localeCompare disagree on '-' and case.
const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const byArtwork = (a: { artwork_id: string }, b: { artwork_id: string }): number => compare(a.artwork_id, b.artwork_id);
const byArtworkThenPosition = (a: ProvenanceRow, b: ProvenanceRow): number =>
  compare(a.artwork_id, b.artwork_id) || Number(a.position - b.position);

/** What a run of traffic did: the highest position answered, and how many commands were accepted and refused. */
export interface Tally {
  position: number;
  accepted: number;
  refused: number;
}

/** An empty tally. */
const newTally = (): Tally => ({ position: 0, accepted: 0, refused: 0 });

const artists = ["ada", "bo", "cy"] as const;
const collectors = ["dee", "eli", "fay", "gus"] as const;
const splits: readonly (readonly RoyaltyShare[])[] = [
  [],
  [{ recipientId: "artist", basisPoints: 1_000 }],
  [
    { recipientId: "artist", basisPoints: 500 },
    { recipientId: "studio", basisPoints: 250 },
  ],
  [
    { recipientId: "studio", basisPoints: 9_000 },
    { recipientId: "artist", basisPoints: 1_000 },
  ],
];

/**
 * Mints `count` artworks (ids `<prefix>-<i>-<random>`) by three artists and takes each through its own life, the
 * artworks in parallel: splits set (by the artist, and refused to others or when over 100 %), listed, relisted at
 * another price, delisted, transferred a few times (some while listed), some burned (some while listed) and then
 * refused everything. Every command's outcome is checked: an unexpected answer throws. Returns the tally.
 */
export async function artworkTraffic(c: Clients, prefix: string, count: number, tally = newTally()): Promise<Tally> {
  const { ok, refused } = senders(tally);
  const life = async (i: number): Promise<void> => {
    const artworkId = `${prefix}-${i}-${randomUUID().slice(0, 8)}`;
    const artist = artists[i % artists.length] ?? "ada";
    const buyer = collectors[i % collectors.length] ?? "dee";
    const next = collectors[(i + 1) % collectors.length] ?? "eli";
    const as = (actor: string) => ({ commandId: randomUUID(), actor });
    const mint = () =>
      c.artwork.mintArtwork({
        metadata: as(artist),
        artworkId,
        artistId: artist,
        title: `Study no. ${i}`,
        contentHash: `sha256:${createHash("sha256").update(artworkId).digest("hex")}`,
        royaltySplit: (splits[i % splits.length] ?? []).map((s) => ({ ...s, recipientId: `${s.recipientId}-${artist}` })),
      });

    await ok(mint());
    await refused(Code.AlreadyExists, mint());
    if (i === 0) await refused(Code.NotFound, c.artwork.delist({ metadata: as(artist), artworkId: `${artworkId}-never` }));
    if (i % 2 === 0) {
      const royaltySplit = [
        { recipientId: "estate", basisPoints: 700 },
        { recipientId: artist, basisPoints: 300 + i },
      ];
      await refused(Code.FailedPrecondition, c.artwork.setRoyaltySplit({ metadata: as(buyer), artworkId, royaltySplit }));
      await ok(c.artwork.setRoyaltySplit({ metadata: as(artist), artworkId, royaltySplit }));
    }
    if (i % 3 === 1) {
      const royaltySplit = [
        { recipientId: "estate", basisPoints: 9_000 },
        { recipientId: artist, basisPoints: 1_001 },
      ];
      await refused(Code.InvalidArgument, c.artwork.setRoyaltySplit({ metadata: as(artist), artworkId, royaltySplit }));
    }
    await ok(c.artwork.listForSale({ metadata: as(artist), artworkId, priceCents: BigInt(1_000 + i * 100), payoutWalletId: `w-${artist}` }));
    await refused(Code.FailedPrecondition, c.artwork.listForSale({ metadata: as(buyer), artworkId, priceCents: 1n, payoutWalletId: `w-${buyer}` }));
    if (i % 2 === 1) await ok(c.artwork.listForSale({ metadata: as(artist), artworkId, priceCents: BigInt(2_500 + i), payoutWalletId: `w-${artist}` }));
    if (i % 3 === 0) {
      await ok(c.artwork.delist({ metadata: as(artist), artworkId }));
      await ok(c.artwork.delist({ metadata: as(artist), artworkId })); // a no-op: nothing appended
    }
    let owner: string = artist;
    if (i % 5 !== 4) {
      // Odd artworks are still listed here: the transfer must clear the listing.
      await ok(c.artwork.transferOwnership({ metadata: as(artist), artworkId, newOwnerId: buyer }));
      owner = buyer;
      await refused(Code.FailedPrecondition, c.artwork.transferOwnership({ metadata: as(artist), artworkId, newOwnerId: next }));
      if (i % 2 === 0) {
        await ok(c.artwork.listForSale({ metadata: as(buyer), artworkId, priceCents: BigInt(5_000 + i), payoutWalletId: `w-${buyer}` }));
        await ok(c.artwork.transferOwnership({ metadata: as(buyer), artworkId, newOwnerId: next }));
        owner = next;
      }
    }
    if (i % 4 === 3) {
      if (i % 8 === 3) await ok(c.artwork.listForSale({ metadata: as(owner), artworkId, priceCents: BigInt(9_000 + i), payoutWalletId: `w-${owner}` }));
      await ok(c.artwork.burnArtwork({ metadata: as(owner), artworkId }));
      await refused(Code.FailedPrecondition, c.artwork.listForSale({ metadata: as(owner), artworkId, priceCents: 10n, payoutWalletId: `w-${owner}` }));
      await refused(Code.FailedPrecondition, c.artwork.transferOwnership({ metadata: as(owner), artworkId, newOwnerId: "hal" }));
      await refused(Code.AlreadyExists, mint());
    }
  };
  await Promise.all(Array.from({ length: count }, (_, i) => life(i)));
  return tally;
}

/**
 * Carries on with artworks that exist already, as their current owners (`rows`, as {@link artworksFromStream}
 * gives them): each live one is listed again, every other one sold on to "hal", every third one then burned; a
 * listing by its artist when the artist no longer owns it is refused.
 */
export async function ownerTraffic(c: Clients, rows: readonly ArtworkRow[], tally = newTally()): Promise<Tally> {
  const { ok, refused } = senders(tally);
  const live = rows.filter((row) => row.burned === 0n);
  await Promise.all(
    live.map(async ({ artwork_id: artworkId, artist_id: artist, owner_id: owner }, i) => {
      const as = (actor: string) => ({ commandId: randomUUID(), actor });
      if (artist !== owner) {
        await refused(Code.FailedPrecondition, c.artwork.listForSale({ metadata: as(artist), artworkId, priceCents: 1n, payoutWalletId: `w-${artist}` }));
      }
      await ok(c.artwork.listForSale({ metadata: as(owner), artworkId, priceCents: BigInt(7_000 + i), payoutWalletId: `w-${owner}` }));
      let current = owner;
      if (i % 2 === 0 && owner !== "hal") {
        await ok(c.artwork.transferOwnership({ metadata: as(owner), artworkId, newOwnerId: "hal" }));
        current = "hal";
      }
      if (i % 3 === 0) await ok(c.artwork.burnArtwork({ metadata: as(current), artworkId }));
    }),
  );
  return tally;
}

interface Answer {
  readonly result?: { readonly position: bigint } | undefined;
}

/** Sends commands expected to be accepted or refused with a code, counting them in `tally`. */
function senders(tally: Tally) {
  const ok = async (call: Promise<Answer>): Promise<void> => {
    const answer = await call;
    tally.position = Math.max(tally.position, Number(answer.result?.position ?? 0n));
    tally.accepted++;
  };
  const refused = async (code: Code, call: Promise<unknown>): Promise<void> => {
    try {
      await call;
    } catch (err) {
      if (err instanceof ConnectError && err.code === code) {
        tally.refused++;
        return;
      }
      throw err;
    }
    throw new Error(`expected the command to be refused with ${Code[code]}; it was accepted`);
  };
  return { ok, refused };
}
