import { create, isMessage } from "@bufbuild/protobuf";
import type { ArtworkEvent as DomainEvent, RoyaltyShare } from "../../domain/artwork/types.js";
import { assertNever } from "../../domain/assert-never.js";
import type { ArtworkEvent as ApiEvent } from "../../gen/foldline/marketplace/v1/artwork_service_pb.js";
import {
  ArtworkBurnedSchema,
  ArtworkDelistedSchema,
  ArtworkListedSchema,
  ArtworkMintedSchema,
  ArtworkSoldSchema,
  OwnershipTransferredSchema,
  RoyaltySplitChangedSchema,
  type RoyaltyShare as ProtoShare,
} from "../../gen/foldline/marketplace/v1/events_pb.js";
import type { EventRecord } from "../../streams/commit-codec.js";
import { fromEventRecord, toEventRecord } from "./event-records.js";
import { fromProtoPayouts, toProtoPayouts } from "./payout-messages.js";

const shares = (split: readonly RoyaltyShare[]) => split.map((s) => ({ recipientId: s.recipientId, basisPoints: s.basisPoints }));
const fromShares = (split: readonly ProtoShare[]): RoyaltyShare[] =>
  split.map((s) => ({ recipientId: s.recipientId, basisPoints: s.basisPoints }));

/** A domain event as the API's `ArtworkEvent` oneof, whose value is the persisted message. */
export function toApiArtworkEvent(event: DomainEvent): Exclude<ApiEvent["event"], { case: undefined }> {
  switch (event.type) {
    case "ArtworkMinted":
      return {
        case: "minted",
        value: create(ArtworkMintedSchema, {
          artistId: event.artistId,
          title: event.title,
          contentHash: event.contentHash,
          royaltySplit: shares(event.royaltySplit),
        }),
      };
    case "RoyaltySplitChanged":
      return { case: "royaltySplitChanged", value: create(RoyaltySplitChangedSchema, { royaltySplit: shares(event.royaltySplit) }) };
    case "ArtworkListed":
      return {
        case: "listed",
        value: create(ArtworkListedSchema, { priceCents: event.priceCents, payoutWalletId: event.payoutWalletId ?? "" }),
      };
    case "ArtworkDelisted":
      return { case: "delisted", value: create(ArtworkDelistedSchema) };
    case "OwnershipTransferred":
      return {
        case: "ownershipTransferred",
        value: create(OwnershipTransferredSchema, { fromOwnerId: event.fromOwnerId, toOwnerId: event.toOwnerId }),
      };
    case "ArtworkBurned":
      return { case: "burned", value: create(ArtworkBurnedSchema) };
    case "ArtworkSold":
      return {
        case: "sold",
        value: create(ArtworkSoldSchema, {
          purchaseId: event.purchaseId,
          sellerId: event.sellerId,
          buyerId: event.buyerId,
          priceCents: event.priceCents,
          payouts: toProtoPayouts(event.payouts),
        }),
      };
    default:
      return assertNever(event);
  }
}

/** The storage form of an artwork event: the persisted message named by its full type name. */
export function encodeArtworkEvent(event: DomainEvent): EventRecord {
  return toEventRecord(toApiArtworkEvent(event).value);
}

/** Reads an artwork event back. Throws on a type or schema version this code does not know. */
export function decodeArtworkEvent(stored: EventRecord): DomainEvent {
  const m = fromEventRecord(stored);
  if (isMessage(m, ArtworkMintedSchema)) {
    return {
      type: "ArtworkMinted",
      artistId: m.artistId,
      title: m.title,
      contentHash: m.contentHash,
      royaltySplit: fromShares(m.royaltySplit),
    };
  }
  if (isMessage(m, RoyaltySplitChangedSchema)) return { type: "RoyaltySplitChanged", royaltySplit: fromShares(m.royaltySplit) };
  if (isMessage(m, ArtworkListedSchema)) {
    // Listings stored before the payout wallet existed carry none: the proceeds go to the owner's id.
    return { type: "ArtworkListed", priceCents: m.priceCents, ...(m.payoutWalletId === "" ? {} : { payoutWalletId: m.payoutWalletId }) };
  }
  if (isMessage(m, ArtworkDelistedSchema)) return { type: "ArtworkDelisted" };
  if (isMessage(m, OwnershipTransferredSchema)) {
    return { type: "OwnershipTransferred", fromOwnerId: m.fromOwnerId, toOwnerId: m.toOwnerId };
  }
  if (isMessage(m, ArtworkBurnedSchema)) return { type: "ArtworkBurned" };
  if (isMessage(m, ArtworkSoldSchema)) {
    const { purchaseId, sellerId, buyerId, priceCents } = m;
    return { type: "ArtworkSold", purchaseId, sellerId, buyerId, priceCents, payouts: fromProtoPayouts(m.payouts) };
  }
  throw new Error(`${stored.type} is not an artwork event`);
}
