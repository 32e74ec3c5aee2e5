import { decodeArtworkEvent } from "../../commands/marketplace/artwork-events.js";
import type { RoyaltyShare } from "../../domain/artwork/types.js";
import type { Projection } from "../projector.js";

const subjectPrefix = "ev.artwork.";

/** A row of the `artworks` table, as better-sqlite3 returns it (integers as bigint). */
export interface ArtworkRow {
  readonly artwork_id: string;
  readonly artist_id: string;
  readonly owner_id: string;
  readonly title: string;
  readonly content_hash: string;
  /** JSON: `[{"recipientId","basisPoints"}]` in the split's order. */
  readonly royalty_split: string;
  /** Cents; null when not listed. */
  readonly listed_price_cents: bigint | null;
  /** 0 or 1. */
  readonly burned: bigint;
  /** ISO 8601, as `Date.toISOString` writes it. */
  readonly minted_at: string;
  readonly version: bigint;
  readonly position: bigint;
}

/** A row of the `provenance` table: one change of owner, the mint included. */
export interface ProvenanceRow {
  readonly artwork_id: string;
  readonly position: bigint;
  readonly version: bigint;
  /** Null for the mint. */
  readonly from_owner_id: string | null;
  readonly to_owner_id: string;
  /** ISO 8601, the commit's recorded time. */
  readonly at: string;
}

/**
 * The `artworks` read model: one row per minted artwork with its artist, owner, title, content hash, royalty
 * split (a JSON array of `{"recipientId","basisPoints"}` in the split's order), asking price (NULL when not
 * listed), whether it is burned, when it was minted, its version and the position of its last commit; and its
 * `provenance`, one row per change of owner, the mint included (`from_owner_id` NULL, to the artist).
 *
 * It folds as the domain's `evolve` does: a transfer clears the listing; a burned artwork keeps its row, with
 * `burned = 1` and no listing, and takes no further change; an event that does not fit the artwork's state (a
 * second mint, anything before the mint or after the burn) changes nothing but the version and position.
 */
export const artworksProjection: Projection = {
  name: "artworks",

  migrate(db) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS artworks (
        artwork_id TEXT PRIMARY KEY,
        artist_id TEXT NOT NULL,
        owner_id TEXT NOT NULL,
        title TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        royalty_split TEXT NOT NULL,
        listed_price_cents INTEGER,
        burned INTEGER NOT NULL CHECK (burned IN (0, 1)),
        minted_at TEXT NOT NULL,
        version INTEGER NOT NULL,
        position INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS artworks_by_owner_id ON artworks (owner_id, artwork_id);
      CREATE INDEX IF NOT EXISTS artworks_by_artist_id ON artworks (artist_id, artwork_id);
      CREATE TABLE IF NOT EXISTS provenance (
        artwork_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        version INTEGER NOT NULL,
        from_owner_id TEXT,
        to_owner_id TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (artwork_id, position)
      ) STRICT;
    `);
  },

  prepare(db) {
    // The artist is bound twice: minting makes the artist the owner. A second mint changes nothing, as in evolve.
    const mint = db.prepare<[string, string, string, string, string, string, string]>(
      `INSERT INTO artworks (artwork_id, artist_id, owner_id, title, content_hash, royalty_split, listed_price_cents,
         burned, minted_at, version, position)
       VALUES (?, ?, ?, ?, ?, ?, NULL, 0, ?, 0, 0)
       ON CONFLICT (artwork_id) DO NOTHING`,
    );
    // Every change below leaves a burned artwork as it is, as evolve does.
    const split = db.prepare<[string, string]>("UPDATE artworks SET royalty_split = ? WHERE artwork_id = ? AND burned = 0");
    const price = db.prepare<[bigint | null, string]>(
      "UPDATE artworks SET listed_price_cents = ? WHERE artwork_id = ? AND burned = 0",
    );
    const transfer = db.prepare<[string, string]>(
      "UPDATE artworks SET owner_id = ?, listed_price_cents = NULL WHERE artwork_id = ? AND burned = 0",
    );
    const burn = db.prepare<[string]>(
      "UPDATE artworks SET burned = 1, listed_price_cents = NULL WHERE artwork_id = ? AND burned = 0",
    );
    const handOver = db.prepare<[string, number, number, string | null, string, string]>(
      "INSERT INTO provenance (artwork_id, position, version, from_owner_id, to_owner_id, at) VALUES (?, ?, ?, ?, ?, ?)",
    );
    const stamp = db.prepare<[number, number, string]>("UPDATE artworks SET version = ?, position = ? WHERE artwork_id = ?");

    return (commit) => {
      if (!commit.subject.startsWith(subjectPrefix)) return;
      const artworkId = commit.subject.slice(subjectPrefix.length);
      const { aggregateVersion: version } = commit.metadata;
      const at = commit.metadata.recordedAt.toISOString();
      for (const record of commit.events) {
        const event = decodeArtworkEvent(record);
        switch (event.type) {
          case "ArtworkMinted": {
            const { artistId, title, contentHash } = event;
            const minted = mint.run(artworkId, artistId, artistId, title, contentHash, splitJson(event.royaltySplit), at);
            if (minted.changes === 1) handOver.run(artworkId, commit.seq, version, null, artistId, at);
            break;
          }
          case "RoyaltySplitChanged":
            split.run(splitJson(event.royaltySplit), artworkId);
            break;
          case "ArtworkListed":
            price.run(event.priceCents, artworkId);
            break;
          case "ArtworkDelisted":
            price.run(null, artworkId);
            break;
          case "OwnershipTransferred":
            if (transfer.run(event.toOwnerId, artworkId).changes === 1) {
              handOver.run(artworkId, commit.seq, version, event.fromOwnerId, event.toOwnerId, at);
            }
            break;
          case "ArtworkBurned":
            burn.run(artworkId);
            break;
        }
      }
      stamp.run(version, commit.seq, artworkId);
    };
  },
};

// Only the two fields, in this order: the column's JSON is compared and served as is.
function splitJson(split: readonly RoyaltyShare[]): string {
  return JSON.stringify(split.map(({ recipientId, basisPoints }) => ({ recipientId, basisPoints })));
}
