import { create, isMessage } from "@bufbuild/protobuf";
import { assertNever } from "../../domain/assert-never.js";
import type { WalletEvent as DomainEvent } from "../../domain/wallet/types.js";
import {
  FundsDepositedSchema,
  FundsReservedSchema,
  FundsWithdrawnSchema,
  PaymentReceivedSchema,
  ReservationReleasedSchema,
  ReservationSettledSchema,
  WalletOpenedSchema,
} from "../../gen/foldline/marketplace/v1/events_pb.js";
import type { WalletEvent as ApiEvent } from "../../gen/foldline/marketplace/v1/wallet_service_pb.js";
import type { EventRecord } from "../../streams/commit-codec.js";
import { fromEventRecord, toEventRecord } from "./event-records.js";
import { fromProtoKind, toProtoKind } from "./payout-messages.js";

/** A domain event as the API's `WalletEvent` oneof, whose value is the persisted message. */
export function toApiWalletEvent(event: DomainEvent): Exclude<ApiEvent["event"], { case: undefined }> {
  switch (event.type) {
    case "WalletOpened":
      return { case: "opened", value: create(WalletOpenedSchema, { ownerId: event.ownerId }) };
    case "FundsDeposited":
      return { case: "deposited", value: create(FundsDepositedSchema, { amountCents: event.amountCents }) };
    case "FundsWithdrawn":
      return { case: "withdrawn", value: create(FundsWithdrawnSchema, { amountCents: event.amountCents }) };
    case "FundsReserved":
      return {
        case: "reserved",
        value: create(FundsReservedSchema, {
          reservationId: event.reservationId,
          amountCents: event.amountCents,
          purchaseId: event.purchaseId ?? "",
        }),
      };
    case "ReservationReleased":
      return {
        case: "reservationReleased",
        value: create(ReservationReleasedSchema, { reservationId: event.reservationId, amountCents: event.amountCents }),
      };
    case "ReservationSettled":
      return {
        case: "reservationSettled",
        value: create(ReservationSettledSchema, { reservationId: event.reservationId, amountCents: event.amountCents }),
      };
    case "PaymentReceived":
      return {
        case: "paymentReceived",
        value: create(PaymentReceivedSchema, {
          purchaseId: event.purchaseId,
          artworkId: event.artworkId,
          amountCents: event.amountCents,
          kind: toProtoKind(event.kind),
        }),
      };
    default:
      return assertNever(event);
  }
}

/** The storage form of a wallet event: the persisted message named by its full type name. */
export function encodeWalletEvent(event: DomainEvent): EventRecord {
  return toEventRecord(toApiWalletEvent(event).value);
}

/** Reads a wallet event back. Throws on a type or schema version this code does not know. */
export function decodeWalletEvent(stored: EventRecord): DomainEvent {
  const m = fromEventRecord(stored);
  if (isMessage(m, WalletOpenedSchema)) return { type: "WalletOpened", ownerId: m.ownerId };
  if (isMessage(m, FundsDepositedSchema)) return { type: "FundsDeposited", amountCents: m.amountCents };
  if (isMessage(m, FundsWithdrawnSchema)) return { type: "FundsWithdrawn", amountCents: m.amountCents };
  if (isMessage(m, FundsReservedSchema)) {
    const { reservationId, amountCents, purchaseId } = m;
    return { type: "FundsReserved", reservationId, amountCents, ...(purchaseId === "" ? {} : { purchaseId }) };
  }
  if (isMessage(m, PaymentReceivedSchema)) {
    const { purchaseId, artworkId, amountCents } = m;
    return { type: "PaymentReceived", purchaseId, artworkId, amountCents, kind: fromProtoKind(m.kind) };
  }
  if (isMessage(m, ReservationReleasedSchema)) {
    return { type: "ReservationReleased", reservationId: m.reservationId, amountCents: m.amountCents };
  }
  if (isMessage(m, ReservationSettledSchema)) {
    return { type: "ReservationSettled", reservationId: m.reservationId, amountCents: m.amountCents };
  }
  throw new Error(`${stored.type} is not a wallet event`);
}
