import { create } from "@bufbuild/protobuf";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import type { Logger } from "pino";
import { ArtworkService } from "../../gen/foldline/marketplace/v1/artwork_service_pb.js";
import {
  CommandService,
  ExecuteResponseSchema,
  type ExecuteRequest,
  type ExecuteResponse,
} from "../../gen/foldline/marketplace/v1/command_service_pb.js";
import { PurchaseService } from "../../gen/foldline/marketplace/v1/purchase_service_pb.js";
import { WalletService } from "../../gen/foldline/marketplace/v1/wallet_service_pb.js";
import type { CommandPipeline } from "../command-pipeline.js";
import { executeRoute, type CommandRoute } from "../command-route.js";
import { toConnectError } from "../error-codes.js";
import { InvalidRequest } from "../errors.js";
import { pipelined } from "../pipelined.js";
import { artworkRoutes } from "./artwork-routes.js";
import { executeBuyArtwork } from "./purchase-routes.js";
import { walletRoutes } from "./wallet-routes.js";

/** Options of {@link registerMarketplace}. */
export interface MarketplaceServicesOptions {
  readonly pipeline: CommandPipeline;
  readonly log: Logger;
  /** Commands of one Execute stream handled concurrently, at most. */
  readonly maxInFlightPerStream: number;
  /** Aborted when the server shuts down: Execute streams stop reading and answer what they started. */
  readonly shutdown: AbortSignal;
}

/** Registers ArtworkService, WalletService, PurchaseService and the streaming CommandService on `router`. */
export function registerMarketplace(router: ConnectRouter, options: MarketplaceServicesOptions): void {
  const { pipeline, log } = options;
  const a = artworkRoutes;
  const w = walletRoutes;
  router.service(ArtworkService, {
    mintArtwork: (req) => executeRoute(pipeline, a.mintArtwork, req),
    setRoyaltySplit: (req) => executeRoute(pipeline, a.setRoyaltySplit, req),
    listForSale: (req) => executeRoute(pipeline, a.listForSale, req),
    delist: (req) => executeRoute(pipeline, a.delist, req),
    transferOwnership: (req) => executeRoute(pipeline, a.transferOwnership, req),
    burnArtwork: (req) => executeRoute(pipeline, a.burnArtwork, req),
  });
  router.service(WalletService, {
    openWallet: (req) => executeRoute(pipeline, w.openWallet, req),
    deposit: (req) => executeRoute(pipeline, w.deposit, req),
    withdraw: (req) => executeRoute(pipeline, w.withdraw, req),
    reserveFunds: (req) => executeRoute(pipeline, w.reserveFunds, req),
    releaseReservation: (req) => executeRoute(pipeline, w.releaseReservation, req),
    settleReservation: (req) => executeRoute(pipeline, w.settleReservation, req),
  });
  router.service(PurchaseService, {
    buyArtwork: (req) => executeBuyArtwork(pipeline, req),
  });

  // ExecuteRequest's cases are named after the unary methods, and ExecuteResponse's after them too.
  const routes: Record<string, CommandRoute<never, unknown, unknown, unknown, unknown>> = { ...artworkRoutes, ...walletRoutes } as never;
  const handlers: Record<NonNullable<ExecuteRequest["command"]["case"]>, (request: never) => Promise<unknown>> = {
    ...Object.fromEntries(Object.entries(routes).map(([kind, route]) => [kind, (request: never) => executeRoute(pipeline, route, request)])),
    buyArtwork: (request: never) => executeBuyArtwork(pipeline, request),
  } as never;

  const executeOne = async (req: ExecuteRequest): Promise<ExecuteResponse> => {
    try {
      const { case: kind, value } = req.command;
      if (kind === undefined) throw new InvalidRequest("the ExecuteRequest carries no command: set one of its fields");
      const answer = await handlers[kind](value as never);
      return create(ExecuteResponseSchema, { outcome: { case: kind, value: answer } as ExecuteResponse["outcome"] });
    } catch (err) {
      const connectError = toConnectError(err, log);
      return create(ExecuteResponseSchema, {
        outcome: { case: "error", value: { code: codeName(connectError.code), message: connectError.rawMessage } },
      });
    }
  };

  router.service(CommandService, {
    execute: (requests) =>
      pipelined(requests, executeOne, { maxInFlight: options.maxInFlightPerStream, shutdown: options.shutdown }),
  });
}

/** `Code.FailedPrecondition` → "failed_precondition", as gRPC names its codes. */
function codeName(code: Code): string {
  return Code[code].replace(/[A-Z]/g, (letter, at: number) => (at === 0 ? "" : "_") + letter.toLowerCase());
}
