import { create, toBinary } from "@bufbuild/protobuf";
import { buyArtwork, type PurchaseParties } from "../../domain/purchase/buy.js";
import { purchaseDecider } from "../../domain/purchase/decider.js";
import type { PurchaseCommand, PurchaseEvent, PurchaseState } from "../../domain/purchase/types.js";
import {
  BuyArtworkRequestSchema,
  BuyArtworkResponseSchema,
  type BuyArtworkRequest,
  type BuyArtworkResponse,
} from "../../gen/foldline/marketplace/v1/purchase_service_pb.js";
import type { AggregateType } from "../aggregate-type.js";
import type { CommandPipeline, UnitOfWork } from "../command-pipeline.js";
import { InvalidRequest } from "../errors.js";
import { requireId, requireMetadata, requirePositive } from "../request-fields.js";
import { artworkType } from "./artwork-routes.js";
import { commandResult } from "./command-result.js";
import { decodePurchaseEvent, encodePurchaseEvent, toApiPurchaseEvent } from "./purchase-events.js";
import { walletType } from "./wallet-routes.js";

/** The Purchase aggregate in the command pipeline: `ev.purchase.<purchase id>`. */
export const purchaseType: AggregateType<PurchaseCommand, PurchaseEvent, PurchaseState> = {
  name: "purchase",
  decider: purchaseDecider,
  encodeEvent: encodePurchaseEvent,
  decodeEvent: decodePurchaseEvent,
};

/** The parties of a purchase as a transaction's unit of work has them. */
function partiesOf(unit: UnitOfWork): PurchaseParties {
  return {
    purchase: (id) => unit.state(purchaseType, id),
    artwork: (id) => unit.state(artworkType, id),
    wallet: (id) => unit.state(walletType, id),
    decidePurchase: (id, command) => unit.decide(purchaseType, id, command),
    decideArtwork: (id, command) => unit.decide(artworkType, id, command),
    decideWallet: (id, command) => unit.decide(walletType, id, command),
  };
}

/**
 * PurchaseService.BuyArtwork: validates the request and buys the artwork in one transaction (see `buyArtwork` in
 * the domain); throws what the pipeline throws.
 */
export async function executeBuyArtwork(pipeline: CommandPipeline, request: BuyArtworkRequest): Promise<BuyArtworkResponse> {
  const metadata = requireMetadata(request.metadata);
  if (metadata.expectedVersion !== undefined && metadata.expectedVersion !== 0) {
    throw new InvalidRequest(`a purchase is new: metadata.expected_version may only be 0, not ${metadata.expectedVersion}`);
  }
  const purchaseId = requireId("purchase_id", request.purchaseId);
  const buy = {
    purchaseId,
    artworkId: requireId("artwork_id", request.artworkId),
    buyerId: requireId("buyer_id", request.buyerId),
    buyerWalletId: requireId("buyer_wallet_id", request.buyerWalletId),
    priceCents: requirePositive("price_cents", request.priceCents),
  };
  const outcome = await pipeline.transact({
    commandId: metadata.commandId,
    actor: metadata.actor,
    correlationId: metadata.correlationId,
    causationId: metadata.causationId,
    requestType: BuyArtworkRequestSchema.typeName,
    request: toBinary(BuyArtworkRequestSchema, request),
    types: [purchaseType, artworkType, walletType],
    decide: (unit) => buyArtwork(buy, partiesOf(unit)),
  });
  const purchase = outcome.commits.find((c) => c.type === purchaseType.name);
  if (purchase === undefined) throw new Error(`purchase ${purchaseId} committed nothing to its own stream`);
  // The batch's last position, so that a query given it sees every part of the purchase.
  const position = Math.max(...outcome.commits.map((c) => c.position));
  return create(BuyArtworkResponseSchema, {
    result: commandResult({ ...purchase, position }),
    events: (purchase.events as PurchaseEvent[]).map((e) => ({ event: toApiPurchaseEvent(e) })),
  });
}
