import { create, type DescMessage } from "@bufbuild/protobuf";
import { artworkDecider } from "../../domain/artwork/decider.js";
import {
  maxRoyaltyRecipients,
  type ArtworkCommand,
  type ArtworkEvent,
  type ArtworkState,
  type RoyaltyShare,
} from "../../domain/artwork/types.js";
import {
  BurnArtworkRequestSchema,
  BurnArtworkResponseSchema,
  DelistRequestSchema,
  DelistResponseSchema,
  ListForSaleRequestSchema,
  ListForSaleResponseSchema,
  MintArtworkRequestSchema,
  MintArtworkResponseSchema,
  SetRoyaltySplitRequestSchema,
  SetRoyaltySplitResponseSchema,
  TransferOwnershipRequestSchema,
  TransferOwnershipResponseSchema,
} from "../../gen/foldline/marketplace/v1/artwork_service_pb.js";
import type { RoyaltyShare as ProtoShare } from "../../gen/foldline/marketplace/v1/events_pb.js";
import type { AggregateType } from "../aggregate-type.js";
import type { CommandOutcome } from "../command-pipeline.js";
import type { CommandRoute } from "../command-route.js";
import { requireAtMost, requireId, requirePositive, requireText, type CommandMetadataFields } from "../request-fields.js";
import { decodeArtworkEvent, encodeArtworkEvent, toApiArtworkEvent } from "./artwork-events.js";
import { commandResult } from "./command-result.js";

/** The Artwork aggregate in the command pipeline: `ev.artwork.<artwork id>`. */
export const artworkType: AggregateType<ArtworkCommand, ArtworkEvent, ArtworkState> = {
  name: "artwork",
  decider: artworkDecider,
  encodeEvent: encodeArtworkEvent,
  decodeEvent: decodeArtworkEvent,
};

type ArtworkRoute<Req extends DescMessage, Res> = CommandRoute<Req, Res, ArtworkCommand, ArtworkEvent, ArtworkState>;

const answer = (outcome: CommandOutcome<ArtworkEvent>) => ({
  result: commandResult(outcome),
  events: outcome.events.map((e) => ({ event: toApiArtworkEvent(e) })),
});

const split = (field: string, shares: readonly ProtoShare[]): RoyaltyShare[] =>
  requireAtMost(field, shares, maxRoyaltyRecipients).map((s, i) => ({
    recipientId: requireId(`${field}[${i}].recipient_id`, s.recipientId),
    basisPoints: s.basisPoints,
  }));

/** The acting user, required by every rule that names an owner or an artist. */
const actor = (metadata: CommandMetadataFields): string => requireText("metadata.actor", metadata.actor, 128);

/** The ArtworkService RPCs, by method name. */
export const artworkRoutes = {
  mintArtwork: {
    requestSchema: MintArtworkRequestSchema,
    type: artworkType,
    parse: (req) => {
      const artworkId = requireId("artwork_id", req.artworkId);
      return {
        aggregateId: artworkId,
        command: {
          type: "MintArtwork",
          artworkId,
          artistId: requireId("artist_id", req.artistId),
          title: requireText("title", req.title, 200),
          contentHash: requireText("content_hash", req.contentHash, 128),
          royaltySplit: split("royalty_split", req.royaltySplit),
        },
      };
    },
    respond: (o) => create(MintArtworkResponseSchema, answer(o)),
  } satisfies ArtworkRoute<typeof MintArtworkRequestSchema, unknown>,

  setRoyaltySplit: {
    requestSchema: SetRoyaltySplitRequestSchema,
    type: artworkType,
    parse: (req, metadata) => {
      const artworkId = requireId("artwork_id", req.artworkId);
      return {
        aggregateId: artworkId,
        command: { type: "SetRoyaltySplit", artworkId, actorId: actor(metadata), royaltySplit: split("royalty_split", req.royaltySplit) },
      };
    },
    respond: (o) => create(SetRoyaltySplitResponseSchema, answer(o)),
  } satisfies ArtworkRoute<typeof SetRoyaltySplitRequestSchema, unknown>,

  listForSale: {
    requestSchema: ListForSaleRequestSchema,
    type: artworkType,
    parse: (req, metadata) => {
      const artworkId = requireId("artwork_id", req.artworkId);
      return {
        aggregateId: artworkId,
        command: {
          type: "ListForSale",
          artworkId,
          actorId: actor(metadata),
          priceCents: requirePositive("price_cents", req.priceCents),
          payoutWalletId: requireId("payout_wallet_id", req.payoutWalletId),
        },
      };
    },
    respond: (o) => create(ListForSaleResponseSchema, answer(o)),
  } satisfies ArtworkRoute<typeof ListForSaleRequestSchema, unknown>,

  delist: {
    requestSchema: DelistRequestSchema,
    type: artworkType,
    parse: (req, metadata) => {
      const artworkId = requireId("artwork_id", req.artworkId);
      return { aggregateId: artworkId, command: { type: "Delist", artworkId, actorId: actor(metadata) } };
    },
    respond: (o) => create(DelistResponseSchema, answer(o)),
  } satisfies ArtworkRoute<typeof DelistRequestSchema, unknown>,

  transferOwnership: {
    requestSchema: TransferOwnershipRequestSchema,
    type: artworkType,
    parse: (req, metadata) => {
      const artworkId = requireId("artwork_id", req.artworkId);
      return {
        aggregateId: artworkId,
        command: {
          type: "TransferOwnership",
          artworkId,
          actorId: actor(metadata),
          newOwnerId: requireId("new_owner_id", req.newOwnerId),
        },
      };
    },
    respond: (o) => create(TransferOwnershipResponseSchema, answer(o)),
  } satisfies ArtworkRoute<typeof TransferOwnershipRequestSchema, unknown>,

  burnArtwork: {
    requestSchema: BurnArtworkRequestSchema,
    type: artworkType,
    parse: (req, metadata) => {
      const artworkId = requireId("artwork_id", req.artworkId);
      return { aggregateId: artworkId, command: { type: "BurnArtwork", artworkId, actorId: actor(metadata) } };
    },
    respond: (o) => create(BurnArtworkResponseSchema, answer(o)),
  } satisfies ArtworkRoute<typeof BurnArtworkRequestSchema, unknown>,
};
