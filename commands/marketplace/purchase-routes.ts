import { create } from "@bufbuild/protobuf";
import { purchaseDecider } from "../../domain/purchase/decider.js";
import type { PurchaseCommand, PurchaseEvent, PurchaseState } from "../../domain/purchase/types.js";
import {
  BuyArtworkRequestSchema,
  BuyArtworkResponseSchema,
} from "../../gen/foldline/marketplace/v1/purchase_service_pb.js";
import type { AggregateType } from "../aggregate-type.js";
import type { CommandRoute } from "../command-route.js";
import { requireId, requirePositive } from "../request-fields.js";
import { commandResult } from "./command-result.js";
import { decodePurchaseEvent, encodePurchaseEvent, toApiPurchaseEvent } from "./purchase-events.js";

/** The Purchase aggregate in the command pipeline: `ev.purchase.<purchase id>`. */
export const purchaseType: AggregateType<PurchaseCommand, PurchaseEvent, PurchaseState> = {
  name: "purchase",
  decider: purchaseDecider,
  encodeEvent: encodePurchaseEvent,
  decodeEvent: decodePurchaseEvent,
};

/** The PurchaseService RPCs, by method name. */
export const purchaseRoutes = {
  buyArtwork: {
    requestSchema: BuyArtworkRequestSchema,
    type: purchaseType,
    parse: (req) => {
      const purchaseId = requireId("purchase_id", req.purchaseId);
      return {
        aggregateId: purchaseId,
        command: {
          type: "StartPurchase",
          purchaseId,
          artworkId: requireId("artwork_id", req.artworkId),
          buyerId: requireId("buyer_id", req.buyerId),
          buyerWalletId: requireId("buyer_wallet_id", req.buyerWalletId),
          priceCents: requirePositive("price_cents", req.priceCents),
        },
      };
    },
    respond: (o) =>
      create(BuyArtworkResponseSchema, {
        result: commandResult(o),
        events: o.events.map((e) => ({ event: toApiPurchaseEvent(e) })),
      }),
  } satisfies CommandRoute<typeof BuyArtworkRequestSchema, unknown, PurchaseCommand, PurchaseEvent, PurchaseState>,
};
