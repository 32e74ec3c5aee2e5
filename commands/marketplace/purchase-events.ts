import { create, isMessage } from "@bufbuild/protobuf";
import { assertNever } from "../../domain/assert-never.js";
import type { PurchaseEvent as DomainEvent } from "../../domain/purchase/types.js";
import {
  PurchaseArtworkTakenSchema,
  PurchaseCompensatingSchema,
  PurchaseCompletedSchema,
  PurchaseFailedSchema,
  PurchaseFundsReservedSchema,
  PurchasePayoutsQuotedSchema,
  PurchaseStartedSchema,
} from "../../gen/foldline/marketplace/v1/events_pb.js";
import type { PurchaseEvent as ApiEvent } from "../../gen/foldline/marketplace/v1/purchase_service_pb.js";
import type { EventRecord } from "../../streams/commit-codec.js";
import { fromEventRecord, toEventRecord } from "./event-records.js";
import { fromProtoPayouts, toProtoPayouts } from "./payout-messages.js";

/** A domain event as the API's `PurchaseEvent` oneof, whose value is the persisted message. */
export function toApiPurchaseEvent(event: DomainEvent): Exclude<ApiEvent["event"], { case: undefined }> {
  switch (event.type) {
    case "PurchaseStarted": {
      const { artworkId, buyerId, buyerWalletId, priceCents } = event;
      return { case: "started", value: create(PurchaseStartedSchema, { artworkId, buyerId, buyerWalletId, priceCents }) };
    }
    case "PurchaseFundsReserved":
      return { case: "fundsReserved", value: create(PurchaseFundsReservedSchema) };
    case "PurchasePayoutsQuoted":
      return {
        case: "payoutsQuoted",
        value: create(PurchasePayoutsQuotedSchema, { sellerId: event.sellerId, payouts: toProtoPayouts(event.payouts) }),
      };
    case "PurchaseArtworkTaken":
      return {
        case: "artworkTaken",
        value: create(PurchaseArtworkTakenSchema, { sellerId: event.sellerId, payouts: toProtoPayouts(event.payouts) }),
      };
    case "PurchaseCompleted":
      return { case: "completed", value: create(PurchaseCompletedSchema) };
    case "PurchaseCompensating":
      return { case: "compensating", value: create(PurchaseCompensatingSchema, { reason: event.reason }) };
    case "PurchaseFailed":
      return { case: "failed", value: create(PurchaseFailedSchema, { reason: event.reason }) };
    default:
      return assertNever(event);
  }
}

/** The storage form of a purchase event: the persisted message named by its full type name. */
export function encodePurchaseEvent(event: DomainEvent): EventRecord {
  return toEventRecord(toApiPurchaseEvent(event).value);
}

/** Reads a purchase event back. Throws on a type or schema version this code does not know. */
export function decodePurchaseEvent(stored: EventRecord): DomainEvent {
  const m = fromEventRecord(stored);
  if (isMessage(m, PurchaseStartedSchema)) {
    const { artworkId, buyerId, buyerWalletId, priceCents } = m;
    return { type: "PurchaseStarted", artworkId, buyerId, buyerWalletId, priceCents };
  }
  if (isMessage(m, PurchaseFundsReservedSchema)) return { type: "PurchaseFundsReserved" };
  if (isMessage(m, PurchasePayoutsQuotedSchema)) {
    return { type: "PurchasePayoutsQuoted", sellerId: m.sellerId, payouts: fromProtoPayouts(m.payouts) };
  }
  if (isMessage(m, PurchaseArtworkTakenSchema)) {
    return { type: "PurchaseArtworkTaken", sellerId: m.sellerId, payouts: fromProtoPayouts(m.payouts) };
  }
  if (isMessage(m, PurchaseCompletedSchema)) return { type: "PurchaseCompleted" };
  if (isMessage(m, PurchaseCompensatingSchema)) return { type: "PurchaseCompensating", reason: m.reason };
  if (isMessage(m, PurchaseFailedSchema)) return { type: "PurchaseFailed", reason: m.reason };
  throw new Error(`${stored.type} is not a purchase event`);
}
