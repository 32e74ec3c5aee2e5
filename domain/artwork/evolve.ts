import type { ArtworkEvent, ArtworkState, RoyaltyShare } from "./types.js";

/** The state of an artwork before its first event: not minted. */
export const initialState: ArtworkState = { status: "Empty" };

/**
 * Folds one artwork event into the state. Total and pure: it never throws and never mutates its arguments. An event
 * that does not fit the state (anything before `ArtworkMinted`, a second mint, anything after `ArtworkBurned`)
 * leaves the state unchanged; `decide` never produces such a sequence. Minting makes the artist the owner, unlisted;
 * a transfer clears any listing.
 */
export function evolve(state: ArtworkState, event: ArtworkEvent): ArtworkState {
  if (state.status === "Empty") {
    if (event.type !== "ArtworkMinted") return state;
    return {
      status: "Active",
      artistId: event.artistId,
      ownerId: event.artistId,
      title: event.title,
      contentHash: event.contentHash,
      royaltySplit: plainSplit(event.royaltySplit),
      listing: null,
    };
  }
  if (state.status === "Burned") return state;
  switch (event.type) {
    case "ArtworkMinted":
      return state;
    case "RoyaltySplitChanged":
      return { ...state, royaltySplit: plainSplit(event.royaltySplit) };
    case "ArtworkListed":
      return {
        ...state,
        listing: {
          priceCents: event.priceCents,
          ...(event.payoutWalletId === undefined ? {} : { payoutWalletId: event.payoutWalletId }),
        },
      };
    case "ArtworkDelisted":
      return { ...state, listing: null };
    case "OwnershipTransferred":
      return { ...state, ownerId: event.toOwnerId, listing: null };
    case "ArtworkSold":
      // The OwnershipTransferred of the same commit changes the owner and ends the listing.
      return state;
    case "ArtworkBurned":
      return { status: "Burned", artistId: state.artistId, ownerId: state.ownerId };
    default:
      // An unknown event type (a newer writer) is ignored rather than thrown on: evolve is total.
      return state;
  }
}

// Copies only the two fields, so that a decoded message carrying extra properties never leaks into the snapshot.
function plainSplit(split: readonly RoyaltyShare[]): RoyaltyShare[] {
  return split.map(({ recipientId, basisPoints }) => ({ recipientId, basisPoints }));
}
