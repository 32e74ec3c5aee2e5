import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ArtworkEvent as DomainEvent, RoyaltyShare } from "../../domain/artwork/types.js";
import { assertNever } from "../../domain/assert-never.js";
import type { ArtworkEvent as ApiEvent } from "../../gen/foldline/marketplace/v1/artwork_service_pb.js";
import {
  ArtworkBurnedSchema,
  ArtworkDelistedSchema,
  ArtworkListedSchema,
  ArtworkMintedSchema,
  OwnershipTransferredSchema,
  RoyaltySplitChangedSchema,
  type RoyaltyShare as ProtoShare,
} from "../../gen/foldline/marketplace/v1/events_pb.js";
import type { EventRecord } from "../../streams/commit-codec.js";

/** The schema version every artwork event is written with. */
const schemaVersion = 1;

const shares = (split: readonly RoyaltyShare[]) => split.map((s) => ({ recipientId: s.recipientId, basisPoints: s.basisPoints }));
const fromShares = (split: readonly ProtoShare[]): RoyaltyShare[] =>
  split.map((s) => ({ recipientId: s.recipientId, basisPoints: s.basisPoints }));

/** A domain event as the API's `ArtworkEvent` oneof, whose value is the persisted message. */
export function toApiArtworkEvent(event: DomainEvent): ApiEvent["event"] {
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
      return { case: "listed", value: create(ArtworkListedSchema, { priceCents: event.priceCents }) };
    case "ArtworkDelisted":
      return { case: "delisted", value: create(ArtworkDelistedSchema) };
    case "OwnershipTransferred":
      return {
        case: "ownershipTransferred",
        value: create(OwnershipTransferredSchema, { fromOwnerId: event.fromOwnerId, toOwnerId: event.toOwnerId }),
      };
    case "ArtworkBurned":
      return { case: "burned", value: create(ArtworkBurnedSchema) };
    default:
      return assertNever(event);
  }
}

/** The storage form of an artwork event: the persisted message named by its full type name. */
export function encodeArtworkEvent(event: DomainEvent): EventRecord {
  const api = toApiArtworkEvent(event);
  switch (api.case) {
    case "minted":
      return record(api.value.$typeName, toBinary(ArtworkMintedSchema, api.value));
    case "royaltySplitChanged":
      return record(api.value.$typeName, toBinary(RoyaltySplitChangedSchema, api.value));
    case "listed":
      return record(api.value.$typeName, toBinary(ArtworkListedSchema, api.value));
    case "delisted":
      return record(api.value.$typeName, toBinary(ArtworkDelistedSchema, api.value));
    case "ownershipTransferred":
      return record(api.value.$typeName, toBinary(OwnershipTransferredSchema, api.value));
    case "burned":
      return record(api.value.$typeName, toBinary(ArtworkBurnedSchema, api.value));
    case undefined:
      throw new Error("unreachable: every artwork event has an API case");
    default:
      return assertNever(api);
  }
}

/** Reads an artwork event back. Throws on a type or schema version this code does not know. */
export function decodeArtworkEvent(stored: EventRecord): DomainEvent {
  if (stored.schemaVersion !== schemaVersion) {
    throw new Error(`artwork event ${stored.type} has schema version ${stored.schemaVersion}; this code reads ${schemaVersion}`);
  }
  const { payload } = stored;
  switch (stored.type) {
    case ArtworkMintedSchema.typeName: {
      const m = fromBinary(ArtworkMintedSchema, payload);
      return {
        type: "ArtworkMinted",
        artistId: m.artistId,
        title: m.title,
        contentHash: m.contentHash,
        royaltySplit: fromShares(m.royaltySplit),
      };
    }
    case RoyaltySplitChangedSchema.typeName:
      return { type: "RoyaltySplitChanged", royaltySplit: fromShares(fromBinary(RoyaltySplitChangedSchema, payload).royaltySplit) };
    case ArtworkListedSchema.typeName:
      return { type: "ArtworkListed", priceCents: fromBinary(ArtworkListedSchema, payload).priceCents };
    case ArtworkDelistedSchema.typeName:
      return { type: "ArtworkDelisted" };
    case OwnershipTransferredSchema.typeName: {
      const m = fromBinary(OwnershipTransferredSchema, payload);
      return { type: "OwnershipTransferred", fromOwnerId: m.fromOwnerId, toOwnerId: m.toOwnerId };
    }
    case ArtworkBurnedSchema.typeName:
      return { type: "ArtworkBurned" };
    default:
      throw new Error(`unknown artwork event type ${stored.type}`);
  }
}

function record(type: string, payload: Uint8Array): EventRecord {
  return { type, schemaVersion, payload };
}
