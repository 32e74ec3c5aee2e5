import { create, isMessage } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { assertNever } from "../../domain/assert-never.js";
import type { WalletEvent as DomainEvent } from "../../domain/wallet/types.js";
import {
  ExpectedPaymentCancelledSchema,
  FundsDepositedSchema,
  FundsReservedSchema,
  FundsWithdrawnSchema,
  PaymentExpectedSchema,
  PaymentReceivedSchema,
  ReservationReleasedSchema,
  ReservationSettledSchema,
  WalletOpenedSchema,
} from "../../gen/foldline/marketplace/v1/events_pb.js";
import type { WalletEvent as ApiEvent } from "../../gen/foldline/marketplace/v1/wallet_service_pb.js";
import type { EventRecord } from "../../streams/commit-codec.js";
import { WireCursor } from "../../streams/wire-cursor.js";
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
    case "PaymentExpected":
      return {
        case: "paymentExpected",
        value: create(PaymentExpectedSchema, { purchaseId: event.purchaseId, amountCents: event.amountCents }),
      };
    case "ExpectedPaymentCancelled":
      return {
        case: "expectedPaymentCancelled",
        value: create(ExpectedPaymentCancelledSchema, { purchaseId: event.purchaseId, amountCents: event.amountCents }),
      };
    default:
      return assertNever(event);
  }
}

/** The storage form of a wallet event: the persisted message named by its full type name. */
export function encodeWalletEvent(event: DomainEvent): EventRecord {
  return toEventRecord(toApiWalletEvent(event).value);
}

/**
 * Reads a wallet event back. Throws on a type or schema version this code does not know.
 *
 * Rebuilds read every wallet event of the stream, and protobuf-es's reflective decoder (a registry lookup and a
 * message object per event) cost more than the rest of the wallets projection's JavaScript. These messages are
 * a string and an int64 at most, so they are read here by field number with protobuf-es's wire reader, as
 * `fromBinary` reads them (a unit test compares the two on random and damaged payloads). Anything else, an
 * unknown type or schema version included, takes the reflective path and its errors.
 */
export function decodeWalletEvent(stored: EventRecord): DomainEvent {
  if (stored.schemaVersion !== 1) return decodeWalletEventReflective(stored);
  switch (stored.type) {
    case WalletOpenedSchema.typeName:
      return { type: "WalletOpened", ownerId: readStringAndInt64(stored.payload, 1, 0).text };
    case FundsDepositedSchema.typeName:
      return { type: "FundsDeposited", amountCents: readStringAndInt64(stored.payload, 0, 1).int };
    case FundsWithdrawnSchema.typeName:
      return { type: "FundsWithdrawn", amountCents: readStringAndInt64(stored.payload, 0, 1).int };
    case FundsReservedSchema.typeName: {
      const { text, int, text2: purchaseId } = readStringAndInt64(stored.payload, 1, 2, 3);
      return { type: "FundsReserved", reservationId: text, amountCents: int, ...(purchaseId === "" ? {} : { purchaseId }) };
    }
    case ReservationReleasedSchema.typeName: {
      const { text, int } = readStringAndInt64(stored.payload, 1, 2);
      return { type: "ReservationReleased", reservationId: text, amountCents: int };
    }
    case ReservationSettledSchema.typeName: {
      const { text, int } = readStringAndInt64(stored.payload, 1, 2);
      return { type: "ReservationSettled", reservationId: text, amountCents: int };
    }
    case PaymentExpectedSchema.typeName: {
      const { text, int } = readStringAndInt64(stored.payload, 1, 2);
      return { type: "PaymentExpected", purchaseId: text, amountCents: int };
    }
    case ExpectedPaymentCancelledSchema.typeName: {
      const { text, int } = readStringAndInt64(stored.payload, 1, 2);
      return { type: "ExpectedPaymentCancelled", purchaseId: text, amountCents: int };
    }
    default:
      return decodeWalletEventReflective(stored);
  }
}

/** The reference decoding through protobuf-es's reflection. */
export function decodeWalletEventReflective(stored: EventRecord): DomainEvent {
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
  if (isMessage(m, PaymentExpectedSchema)) {
    return { type: "PaymentExpected", purchaseId: m.purchaseId, amountCents: m.amountCents };
  }
  if (isMessage(m, ExpectedPaymentCancelledSchema)) {
    return { type: "ExpectedPaymentCancelled", purchaseId: m.purchaseId, amountCents: m.amountCents };
  }
  throw new Error(`${stored.type} is not a wallet event`);
}

/**
 * Reads a message of a string field `textNo`, an int64 field `intNo` and a second string field `text2No` (0: the
 * message has no such field) as protobuf-es's `fromBinary` does: a known field read as its type says, an unknown
 * one skipped, strings UTF-8. Messages as this code writes them (one-byte tags of these fields, ASCII strings,
 * amounts below 2^49) are read without a reader object; anything else goes through protobuf-es's reader.
 */
function readStringAndInt64(bytes: Uint8Array, textNo: number, intNo: number, text2No = 0): StringAndInt64 {
  return readAsWritten(bytes, textNo, intNo, text2No) ?? readGeneral(bytes, textNo, intNo, text2No);
}

interface StringAndInt64 {
  readonly text: string;
  readonly int: bigint;
  readonly text2: string;
}

function readAsWritten(bytes: Uint8Array, textNo: number, intNo: number, text2No: number): StringAndInt64 | undefined {
  const c = new WireCursor(bytes);
  const end = bytes.length;
  let text = "";
  let int = 0;
  let text2 = "";
  while (c.pos < end) {
    // Field number 0 stands for "no such field": a tag of field 0 is not a tag at all.
    if (textNo !== 0 && c.next((textNo << 3) | 2, end)) {
      const read = c.ascii(end);
      if (read === undefined) return undefined;
      text = read;
    } else if (intNo !== 0 && c.next(intNo << 3, end)) {
      int = c.varint(7, end);
      if (int < 0) return undefined;
    } else if (text2No !== 0 && c.next((text2No << 3) | 2, end)) {
      const read = c.ascii(end);
      if (read === undefined) return undefined;
      text2 = read;
    } else return undefined;
  }
  return { text, int: BigInt(int), text2 };
}

function readGeneral(bytes: Uint8Array, textNo: number, intNo: number, text2No: number): StringAndInt64 {
  const r = new BinaryReader(bytes);
  let text = "";
  let int = 0n;
  let text2 = "";
  while (r.pos < bytes.length) {
    const [no, wireType] = r.tag();
    if (no === textNo) text = r.string(true);
    else if (no === intNo) int = BigInt(r.int64());
    else if (no === text2No) text2 = r.string(true);
    // protobuf-es's recursion limit less the depth of the message.
    else r.skip(wireType, no, 99);
  }
  return { text, int, text2 };
}
