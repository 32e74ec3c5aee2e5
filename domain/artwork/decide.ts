import { assertNever } from "../assert-never.js";
import { AlreadyExistsError, InvalidCommand, NotFoundError, RuleViolation } from "../errors.js";
import { payouts, samePayouts } from "./payouts.js";
import {
  maxRoyaltyBasisPoints,
  maxRoyaltyRecipients,
  type ArtworkCommand,
  type ArtworkEvent,
  type ArtworkState,
  type Payout,
  type RoyaltyShare,
  type SaleQuote,
  type SaleRequest,
} from "./types.js";

type ActiveArtwork = Extract<ArtworkState, { status: "Active" }>;

/**
 * Decides what an artwork command causes. Pure; returns `[]` when the command changes nothing (the same split, the
 * same price, delisting an unlisted artwork, transferring to the current owner).
 *
 * Checks run in one fixed order, and the first failing one is thrown:
 * 1. existence: minting an artwork that exists (active or burned) → `AlreadyExistsError`; anything else on an
 *    unminted artwork → `NotFoundError`;
 * 2. burned: a burned artwork accepts nothing → `RuleViolation`;
 * 3. actor: only the artist changes the split, only the owner lists, delists, transfers or burns → `RuleViolation`
 *    (a sale is the purchase's, not an actor's: it needs a listing at the offered price, a buyer who is not the
 *    owner, and payouts equal to those the purchase made room for, see `quoteSale`);
 * 4. the command's own data (royalty split, price, new owner, artist id) → `InvalidCommand`;
 * 5. no-ops → `[]`; otherwise the events.
 *
 * A sale pays the proceeds into the listing's payout wallet (the wallet whose id is the owner's when the listing
 * names none) and each royalty share into the wallet its recipient names.
 */
export function decide(command: ArtworkCommand, state: ArtworkState): ArtworkEvent[] {
  if (command.type === "MintArtwork") return mint(command, state);
  const active = requireActive(command.artworkId, state);
  switch (command.type) {
    case "SetRoyaltySplit":
      return setRoyaltySplit(command, active);
    case "ListForSale":
      return listForSale(command, active);
    case "Delist":
      requireOwner(active, command.actorId, "delist", command.artworkId);
      return active.listing === null ? [] : [{ type: "ArtworkDelisted" }];
    case "TransferOwnership":
      return transferOwnership(command, active);
    case "BurnArtwork":
      requireOwner(active, command.actorId, "burn", command.artworkId);
      return [{ type: "ArtworkBurned" }];
    case "SellArtwork":
      return sell(command, active);
    default:
      return assertNever(command);
  }
}

/**
 * What selling the artwork to a purchase would do in `state`: the seller and the payouts `SellArtwork` would
 * record, as `payouts` in payouts.ts splits the price. Pure; throws the refusal `SellArtwork` would throw (no such
 * artwork, burned, not listed at the price, bought by its owner). A purchase quotes the sale first, makes room for
 * each payout in its payee's wallet, then sells with the quoted payouts.
 */
export function quoteSale(request: SaleRequest, state: ArtworkState): SaleQuote {
  return saleTerms(request, requireActive(request.artworkId, state));
}

function requireActive(artworkId: string, state: ArtworkState): ActiveArtwork {
  if (state.status === "Empty") throw new NotFoundError(`artwork ${artworkId} does not exist`);
  if (state.status === "Burned") throw new RuleViolation(`artwork ${artworkId} is burned`);
  return state;
}

function mint(command: Extract<ArtworkCommand, { type: "MintArtwork" }>, state: ArtworkState): ArtworkEvent[] {
  if (state.status !== "Empty") {
    const burned = state.status === "Burned" ? " (burned)" : "";
    throw new AlreadyExistsError(`artwork ${command.artworkId} already exists${burned}`);
  }
  if (command.artistId === "") throw new InvalidCommand(`artwork ${command.artworkId} needs an artist id`);
  validateSplit(command.royaltySplit);
  return [
    {
      type: "ArtworkMinted",
      artistId: command.artistId,
      title: command.title,
      contentHash: command.contentHash,
      royaltySplit: plainSplit(command.royaltySplit),
    },
  ];
}

function setRoyaltySplit(
  command: Extract<ArtworkCommand, { type: "SetRoyaltySplit" }>,
  state: ActiveArtwork,
): ArtworkEvent[] {
  if (command.actorId !== state.artistId) {
    throw new RuleViolation(
      `only the artist (${state.artistId}) may change the royalty split of artwork ${command.artworkId}; ` +
        `${command.actorId} is not`,
    );
  }
  validateSplit(command.royaltySplit);
  if (sameSplit(command.royaltySplit, state.royaltySplit)) return [];
  return [{ type: "RoyaltySplitChanged", royaltySplit: plainSplit(command.royaltySplit) }];
}

function listForSale(command: Extract<ArtworkCommand, { type: "ListForSale" }>, state: ActiveArtwork): ArtworkEvent[] {
  requireOwner(state, command.actorId, "list", command.artworkId);
  if (command.priceCents <= 0n) {
    throw new InvalidCommand(`price must be positive; got ${command.priceCents} cents`);
  }
  const { priceCents, payoutWalletId } = command;
  if (payoutWalletId === "") throw new InvalidCommand(`the payout wallet of artwork ${command.artworkId} must not be empty`);
  if (state.listing?.priceCents === priceCents && state.listing.payoutWalletId === payoutWalletId) return [];
  return [{ type: "ArtworkListed", priceCents, ...(payoutWalletId === undefined ? {} : { payoutWalletId }) }];
}

function transferOwnership(
  command: Extract<ArtworkCommand, { type: "TransferOwnership" }>,
  state: ActiveArtwork,
): ArtworkEvent[] {
  requireOwner(state, command.actorId, "transfer", command.artworkId);
  if (command.newOwnerId === "") {
    throw new InvalidCommand(`transfer of artwork ${command.artworkId} needs a new owner id`);
  }
  if (command.newOwnerId === state.ownerId) return [];
  return [{ type: "OwnershipTransferred", fromOwnerId: state.ownerId, toOwnerId: command.newOwnerId }];
}

function sell(command: Extract<ArtworkCommand, { type: "SellArtwork" }>, state: ActiveArtwork): ArtworkEvent[] {
  const { artworkId, purchaseId, buyerId, priceCents } = command;
  const { sellerId, payouts: due } = saleTerms(command, state);
  if (!samePayouts(due, command.payouts)) {
    throw new RuleViolation(
      `artwork ${artworkId} would pay ${describePayouts(due)}; purchase ${purchaseId} made room for ` +
        describePayouts(command.payouts),
    );
  }
  return [
    { type: "ArtworkSold", purchaseId, sellerId, buyerId, priceCents, payouts: due },
    { type: "OwnershipTransferred", fromOwnerId: sellerId, toOwnerId: buyerId },
  ];
}

function saleTerms(request: SaleRequest, state: ActiveArtwork): SaleQuote {
  const { artworkId, purchaseId, buyerId, priceCents } = request;
  if (state.listing === null) throw new RuleViolation(`artwork ${artworkId} is not listed for sale`);
  if (state.listing.priceCents !== priceCents) {
    throw new RuleViolation(
      `artwork ${artworkId} is listed at ${state.listing.priceCents} cents; purchase ${purchaseId} offered ${priceCents}`,
    );
  }
  if (buyerId === state.ownerId) throw new RuleViolation(`${buyerId} already owns artwork ${artworkId}`);
  if (purchaseId === "" || buyerId === "") throw new InvalidCommand("a sale needs a purchase id and a buyer id");
  const proceedsTo = state.listing.payoutWalletId ?? state.ownerId;
  return { sellerId: state.ownerId, payouts: payouts(priceCents, proceedsTo, state.royaltySplit) };
}

function describePayouts(list: readonly Payout[]): string {
  if (list.length === 0) return "no one";
  return list.map((p) => `${p.amountCents} to ${p.recipientId} (${p.kind === "Royalty" ? "royalty" : "proceeds"})`).join(", ");
}

function requireOwner(state: ActiveArtwork, actorId: string, verb: string, artworkId: string): void {
  if (actorId !== state.ownerId) {
    throw new RuleViolation(`only the owner (${state.ownerId}) may ${verb} artwork ${artworkId}; ${actorId} is not`);
  }
}

/**
 * Throws `InvalidCommand` unless the split names at most `maxRoyaltyRecipients` distinct, non-empty recipients,
 * each with a positive integer share, totalling at most `maxRoyaltyBasisPoints`. An empty split is valid.
 */
function validateSplit(split: readonly RoyaltyShare[]): void {
  if (split.length > maxRoyaltyRecipients) {
    throw new InvalidCommand(
      `royalty split has ${split.length} recipients; at most ${maxRoyaltyRecipients} are allowed`,
    );
  }
  const seen = new Set<string>();
  let total = 0;
  for (const { recipientId, basisPoints } of split) {
    if (recipientId === "") throw new InvalidCommand("royalty split names a recipient with an empty id");
    if (seen.has(recipientId)) throw new InvalidCommand(`royalty split names recipient ${recipientId} more than once`);
    seen.add(recipientId);
    // isSafeInteger also refuses NaN, ±Infinity and integers too large to add exactly.
    if (!Number.isSafeInteger(basisPoints) || basisPoints <= 0) {
      throw new InvalidCommand(
        `royalty share of ${recipientId} is ${basisPoints} bps; each share must be a positive integer`,
      );
    }
    total += basisPoints;
  }
  if (total > maxRoyaltyBasisPoints) {
    throw new InvalidCommand(`royalty split total ${total} bps exceeds ${maxRoyaltyBasisPoints}`);
  }
}

// Equal means the same recipients with the same shares in the same order: order is what the artist chose to store.
function sameSplit(a: readonly RoyaltyShare[], b: readonly RoyaltyShare[]): boolean {
  return (
    a.length === b.length &&
    a.every((share, i) => {
      const other = b[i];
      return other !== undefined && share.recipientId === other.recipientId && share.basisPoints === other.basisPoints;
    })
  );
}

// Copies only the two fields, so that a decoded message carrying extra properties never leaks into an event.
function plainSplit(split: readonly RoyaltyShare[]): RoyaltyShare[] {
  return split.map(({ recipientId, basisPoints }) => ({ recipientId, basisPoints }));
}
