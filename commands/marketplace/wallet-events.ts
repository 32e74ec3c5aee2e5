import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { assertNever } from "../../domain/assert-never.js";
import type { WalletEvent as DomainEvent } from "../../domain/wallet/types.js";
import {
  FundsDepositedSchema,
  FundsReservedSchema,
  FundsWithdrawnSchema,
  ReservationReleasedSchema,
  ReservationSettledSchema,
  WalletOpenedSchema,
} from "../../gen/foldline/marketplace/v1/events_pb.js";
import type { WalletEvent as ApiEvent } from "../../gen/foldline/marketplace/v1/wallet_service_pb.js";
import type { EventRecord } from "../../streams/commit-codec.js";

/** The schema version every wallet event is written with. */
const schemaVersion = 1;

/** A domain event as the API's `WalletEvent` oneof, whose value is the persisted message. */
export function toApiWalletEvent(event: DomainEvent): ApiEvent["event"] {
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
        value: create(FundsReservedSchema, { reservationId: event.reservationId, amountCents: event.amountCents }),
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
    default:
      return assertNever(event);
  }
}

/** The storage form of a wallet event: the persisted message named by its full type name. */
export function encodeWalletEvent(event: DomainEvent): EventRecord {
  const api = toApiWalletEvent(event);
  switch (api.case) {
    case "opened":
      return record(api.value.$typeName, toBinary(WalletOpenedSchema, api.value));
    case "deposited":
      return record(api.value.$typeName, toBinary(FundsDepositedSchema, api.value));
    case "withdrawn":
      return record(api.value.$typeName, toBinary(FundsWithdrawnSchema, api.value));
    case "reserved":
      return record(api.value.$typeName, toBinary(FundsReservedSchema, api.value));
    case "reservationReleased":
      return record(api.value.$typeName, toBinary(ReservationReleasedSchema, api.value));
    case "reservationSettled":
      return record(api.value.$typeName, toBinary(ReservationSettledSchema, api.value));
    case undefined:
      throw new Error("unreachable: every wallet event has an API case");
    default:
      return assertNever(api);
  }
}

/** Reads a wallet event back. Throws on a type or schema version this code does not know. */
export function decodeWalletEvent(stored: EventRecord): DomainEvent {
  if (stored.schemaVersion !== schemaVersion) {
    throw new Error(`wallet event ${stored.type} has schema version ${stored.schemaVersion}; this code reads ${schemaVersion}`);
  }
  const { payload } = stored;
  switch (stored.type) {
    case WalletOpenedSchema.typeName:
      return { type: "WalletOpened", ownerId: fromBinary(WalletOpenedSchema, payload).ownerId };
    case FundsDepositedSchema.typeName:
      return { type: "FundsDeposited", amountCents: fromBinary(FundsDepositedSchema, payload).amountCents };
    case FundsWithdrawnSchema.typeName:
      return { type: "FundsWithdrawn", amountCents: fromBinary(FundsWithdrawnSchema, payload).amountCents };
    case FundsReservedSchema.typeName: {
      const m = fromBinary(FundsReservedSchema, payload);
      return { type: "FundsReserved", reservationId: m.reservationId, amountCents: m.amountCents };
    }
    case ReservationReleasedSchema.typeName: {
      const m = fromBinary(ReservationReleasedSchema, payload);
      return { type: "ReservationReleased", reservationId: m.reservationId, amountCents: m.amountCents };
    }
    case ReservationSettledSchema.typeName: {
      const m = fromBinary(ReservationSettledSchema, payload);
      return { type: "ReservationSettled", reservationId: m.reservationId, amountCents: m.amountCents };
    }
    default:
      throw new Error(`unknown wallet event type ${stored.type}`);
  }
}

function record(type: string, payload: Uint8Array): EventRecord {
  return { type, schemaVersion, payload };
}
