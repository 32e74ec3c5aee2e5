import { create, type DescMessage } from "@bufbuild/protobuf";
import { walletDecider } from "../../domain/wallet/decider.js";
import type { WalletCommand, WalletEvent, WalletState } from "../../domain/wallet/types.js";
import {
  DepositRequestSchema,
  DepositResponseSchema,
  OpenWalletRequestSchema,
  OpenWalletResponseSchema,
  ReleaseReservationRequestSchema,
  ReleaseReservationResponseSchema,
  ReserveFundsRequestSchema,
  ReserveFundsResponseSchema,
  SettleReservationRequestSchema,
  SettleReservationResponseSchema,
  WithdrawRequestSchema,
  WithdrawResponseSchema,
} from "../../gen/foldline/marketplace/v1/wallet_service_pb.js";
import type { AggregateType } from "../aggregate-type.js";
import type { CommandOutcome } from "../command-pipeline.js";
import type { CommandRoute } from "../command-route.js";
import { requireId, requirePositive } from "../request-fields.js";
import { commandResult } from "./command-result.js";
import { decodeWalletEvent, encodeWalletEvent, toApiWalletEvent } from "./wallet-events.js";

/** The Wallet aggregate in the command pipeline: `ev.wallet.<wallet id>`. */
export const walletType: AggregateType<WalletCommand, WalletEvent, WalletState> = {
  name: "wallet",
  decider: walletDecider,
  encodeEvent: encodeWalletEvent,
  decodeEvent: decodeWalletEvent,
};

type WalletRoute<Req extends DescMessage, Res> = CommandRoute<Req, Res, WalletCommand, WalletEvent, WalletState>;

const answer = (outcome: CommandOutcome<WalletEvent>) => ({
  result: commandResult(outcome),
  events: outcome.events.map((e) => ({ event: toApiWalletEvent(e) })),
});

/** The WalletService RPCs, by method name. */
export const walletRoutes = {
  openWallet: {
    requestSchema: OpenWalletRequestSchema,
    type: walletType,
    parse: (req) => {
      const walletId = requireId("wallet_id", req.walletId);
      return { aggregateId: walletId, command: { type: "OpenWallet", walletId, ownerId: requireId("owner_id", req.ownerId) } };
    },
    respond: (o) => create(OpenWalletResponseSchema, answer(o)),
  } satisfies WalletRoute<typeof OpenWalletRequestSchema, unknown>,

  deposit: {
    requestSchema: DepositRequestSchema,
    type: walletType,
    parse: (req) => {
      const walletId = requireId("wallet_id", req.walletId);
      return {
        aggregateId: walletId,
        command: { type: "Deposit", walletId, amountCents: requirePositive("amount_cents", req.amountCents) },
      };
    },
    respond: (o) => create(DepositResponseSchema, answer(o)),
  } satisfies WalletRoute<typeof DepositRequestSchema, unknown>,

  withdraw: {
    requestSchema: WithdrawRequestSchema,
    type: walletType,
    parse: (req) => {
      const walletId = requireId("wallet_id", req.walletId);
      return {
        aggregateId: walletId,
        command: { type: "Withdraw", walletId, amountCents: requirePositive("amount_cents", req.amountCents) },
      };
    },
    respond: (o) => create(WithdrawResponseSchema, answer(o)),
  } satisfies WalletRoute<typeof WithdrawRequestSchema, unknown>,

  reserveFunds: {
    requestSchema: ReserveFundsRequestSchema,
    type: walletType,
    parse: (req) => {
      const walletId = requireId("wallet_id", req.walletId);
      return {
        aggregateId: walletId,
        command: {
          type: "ReserveFunds",
          walletId,
          reservationId: requireId("reservation_id", req.reservationId),
          amountCents: requirePositive("amount_cents", req.amountCents),
        },
      };
    },
    respond: (o) => create(ReserveFundsResponseSchema, answer(o)),
  } satisfies WalletRoute<typeof ReserveFundsRequestSchema, unknown>,

  releaseReservation: {
    requestSchema: ReleaseReservationRequestSchema,
    type: walletType,
    parse: (req) => {
      const walletId = requireId("wallet_id", req.walletId);
      return {
        aggregateId: walletId,
        command: { type: "ReleaseReservation", walletId, reservationId: requireId("reservation_id", req.reservationId) },
      };
    },
    respond: (o) => create(ReleaseReservationResponseSchema, answer(o)),
  } satisfies WalletRoute<typeof ReleaseReservationRequestSchema, unknown>,

  settleReservation: {
    requestSchema: SettleReservationRequestSchema,
    type: walletType,
    parse: (req) => {
      const walletId = requireId("wallet_id", req.walletId);
      return {
        aggregateId: walletId,
        command: { type: "SettleReservation", walletId, reservationId: requireId("reservation_id", req.reservationId) },
      };
    },
    respond: (o) => create(SettleReservationResponseSchema, answer(o)),
  } satisfies WalletRoute<typeof SettleReservationRequestSchema, unknown>,
};
