/**
 * One recipient's share of an artwork's royalties, in basis points (1/100 of a percent; 10 000 = 100 %). The
 * recipient is a wallet: a sale pays the share into the wallet of that id.
 */
export interface RoyaltyShare {
  readonly recipientId: string;
  readonly basisPoints: number;
}

/** The most recipients a royalty split may name. */
export const maxRoyaltyRecipients = 16;

/** The most basis points a royalty split may give away in total (100 %). */
export const maxRoyaltyBasisPoints = 10_000;

/**
 * What a caller may ask of an artwork (stream `ev.artwork.<artworkId>`). `actorId` is the authenticated user
 * making the request; money is bigint cents.
 */
export type ArtworkCommand =
  | {
      readonly type: "MintArtwork";
      readonly artworkId: string;
      readonly artistId: string;
      readonly title: string;
      readonly contentHash: string;
      readonly royaltySplit: readonly RoyaltyShare[];
    }
  | {
      readonly type: "SetRoyaltySplit";
      readonly artworkId: string;
      readonly actorId: string;
      readonly royaltySplit: readonly RoyaltyShare[];
    }
  | {
      readonly type: "ListForSale";
      readonly artworkId: string;
      readonly actorId: string;
      readonly priceCents: bigint;
      /** The wallet the seller's proceeds go to; absent: the wallet whose id is the owner's. */
      readonly payoutWalletId?: string;
    }
  | { readonly type: "Delist"; readonly artworkId: string; readonly actorId: string }
  | {
      readonly type: "TransferOwnership";
      readonly artworkId: string;
      readonly actorId: string;
      readonly newOwnerId: string;
    }
  | { readonly type: "BurnArtwork"; readonly artworkId: string; readonly actorId: string }
  | ({
      /** A purchase taking the artwork: only the purchase process manager sends it. */
      readonly type: "SellArtwork";
      /**
       * The payouts the purchase made room for in the payees' wallets (see `quoteSale`): the sale is refused unless
       * it pays exactly these, so that every payout of a sale can be credited.
       */
      readonly payouts: readonly Payout[];
    } & SaleRequest);

/** A purchase's request to buy an artwork: what `quoteSale` prices and `SellArtwork` carries out. */
export interface SaleRequest {
  readonly artworkId: string;
  readonly purchaseId: string;
  readonly buyerId: string;
  readonly priceCents: bigint;
}

/** What selling an artwork to a purchase would do now: who sells it, and who receives what of the price. */
export interface SaleQuote {
  readonly sellerId: string;
  readonly payouts: readonly Payout[];
}

/** Why a party receives part of a sale's price. */
export type PayoutKind = "SaleProceeds" | "Royalty";

/**
 * One share of a sale's price: see `payouts` in payouts.ts for how the price is split. `recipientId` is the
 * wallet it is paid into: a royalty share's recipient, or the listing's payout wallet for the proceeds.
 */
export interface Payout {
  readonly recipientId: string;
  readonly amountCents: bigint;
  readonly kind: PayoutKind;
}

/**
 * What happened to an artwork. STORAGE CONTRACT: these events are persisted and replayed forever; rename or
 * retype nothing, add only optional data, and keep the proto messages that carry them in step (`buf breaking`
 * guards those). The artwork id is the stream's, so it is not repeated in the event.
 */
export type ArtworkEvent =
  | {
      readonly type: "ArtworkMinted";
      readonly artistId: string;
      readonly title: string;
      readonly contentHash: string;
      readonly royaltySplit: readonly RoyaltyShare[];
    }
  | { readonly type: "RoyaltySplitChanged"; readonly royaltySplit: readonly RoyaltyShare[] }
  /** `payoutWalletId`: where the seller's proceeds go; absent (and in listings before it existed): the owner's id. */
  | { readonly type: "ArtworkListed"; readonly priceCents: bigint; readonly payoutWalletId?: string }
  | { readonly type: "ArtworkDelisted" }
  | { readonly type: "OwnershipTransferred"; readonly fromOwnerId: string; readonly toOwnerId: string }
  | { readonly type: "ArtworkBurned" }
  | {
      /** Comes with the OwnershipTransferred from seller to buyer, in the same commit. */
      readonly type: "ArtworkSold";
      readonly purchaseId: string;
      readonly sellerId: string;
      readonly buyerId: string;
      readonly priceCents: bigint;
      readonly payouts: readonly Payout[];
    };

/**
 * An artwork folded from its events: not minted yet, active (owned, possibly listed for sale at a price), or
 * burned (terminal; only who made and last owned it is kept). Plain JSON-able data plus bigints.
 */
export type ArtworkState =
  | { readonly status: "Empty" }
  | {
      readonly status: "Active";
      readonly artistId: string;
      readonly ownerId: string;
      readonly title: string;
      readonly contentHash: string;
      readonly royaltySplit: readonly RoyaltyShare[];
      /** `payoutWalletId`: where the seller's proceeds go; absent: the wallet whose id is the owner's. */
      readonly listing: { readonly priceCents: bigint; readonly payoutWalletId?: string } | null;
    }
  | { readonly status: "Burned"; readonly artistId: string; readonly ownerId: string };
