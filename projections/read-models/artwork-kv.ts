import { decodeArtworkEvent } from "../../commands/marketplace/artwork-events.js";
import type { BucketSpec } from "../../streams/topology.js";
import type { KvProjection, KvWrite } from "../kv-projector.js";

const subjectPrefix = "ev.artwork.";
const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

/** The bucket of the marketplace's KV read models. */
export const marketplaceBucket: BucketSpec = {
  name: "marketplace",
  description: "marketplace read models: per artwork its artist, royalty split and owner",
  history: 1,
  ttlMs: 0,
};

/**
 * Artworks in KV, for point lookups and watches, three keys per artwork:
 * - `artwork.<id>.artist`: `{ artistId, position }`, set at the mint;
 * - `artwork.<id>.royalty`: `{ royaltySplit: [{ recipientId, basisPoints }], position }`, the current split
 *   (what `GetRoyaltyInfo` answers with the artist);
 * - `artwork.<id>.owner`: `{ ownerId, burned, position }`.
 * `position` is the stream sequence of the commit that wrote the value. Every value comes from one event alone,
 * so a commit applied again writes the same bytes.
 */
export const artworkKvProjection: KvProjection = {
  name: "artworks",
  entries(commit) {
    if (!commit.subject.startsWith(subjectPrefix)) return [];
    const id = commit.subject.slice(subjectPrefix.length);
    const position = commit.seq;
    const writes: KvWrite[] = [];
    for (const record of commit.events) {
      const event = decodeArtworkEvent(record);
      switch (event.type) {
        case "ArtworkMinted":
          writes.push(
            { key: `artwork.${id}.artist`, value: json({ artistId: event.artistId, position }) },
            { key: `artwork.${id}.royalty`, value: json({ royaltySplit: event.royaltySplit, position }) },
            { key: `artwork.${id}.owner`, value: json({ ownerId: event.artistId, burned: false, position }) },
          );
          break;
        case "RoyaltySplitChanged":
          writes.push({ key: `artwork.${id}.royalty`, value: json({ royaltySplit: event.royaltySplit, position }) });
          break;
        case "OwnershipTransferred":
          writes.push({ key: `artwork.${id}.owner`, value: json({ ownerId: event.toOwnerId, burned: false, position }) });
          break;
        case "ArtworkBurned":
          writes.push({ key: `artwork.${id}.owner`, value: json({ ownerId: commit.metadata.actor, burned: true, position }) });
          break;
        case "ArtworkListed":
        case "ArtworkDelisted":
        case "ArtworkSold": // the OwnershipTransferred beside it sets the owner
          break;
      }
    }
    return writes;
  },
};
