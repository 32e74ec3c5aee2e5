import { create } from "@bufbuild/protobuf";
import type { Payout, PayoutKind } from "../../domain/artwork/types.js";
import { PayoutKind as ProtoKind, PayoutSchema, type Payout as ProtoPayout } from "../../gen/foldline/marketplace/v1/events_pb.js";

/** A payout kind as stored. */
export function toProtoKind(kind: PayoutKind): ProtoKind {
  return kind === "Royalty" ? ProtoKind.ROYALTY : ProtoKind.SALE_PROCEEDS;
}

/** A stored payout kind; throws on one this code does not know. */
export function fromProtoKind(kind: ProtoKind): PayoutKind {
  if (kind === ProtoKind.ROYALTY) return "Royalty";
  if (kind === ProtoKind.SALE_PROCEEDS) return "SaleProceeds";
  throw new Error(`payout kind ${kind} is not known`);
}

/** Payouts as stored. */
export function toProtoPayouts(payouts: readonly Payout[]): ProtoPayout[] {
  return payouts.map((p) =>
    create(PayoutSchema, { recipientId: p.recipientId, amountCents: p.amountCents, kind: toProtoKind(p.kind) }),
  );
}

/** Stored payouts as domain values. */
export function fromProtoPayouts(payouts: readonly ProtoPayout[]): Payout[] {
  return payouts.map((p) => ({ recipientId: p.recipientId, amountCents: p.amountCents, kind: fromProtoKind(p.kind) }));
}
