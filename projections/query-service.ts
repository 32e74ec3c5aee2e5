import { create } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { QueryService, WalletViewSchema } from "../gen/foldline/marketplace/v1/query_service_pb.js";
import { InvalidRequest } from "../commands/errors.js";
import { requireId } from "../commands/request-fields.js";
import { NotInReadModel } from "./errors.js";
import type { ReadModelReader } from "./read-model-reader.js";

/** The longest a query waits for its read model to reach the position it asked for. */
const maxWaitMs = 10_000;

interface WalletRow {
  readonly wallet_id: string;
  readonly owner_id: string;
  readonly balance_cents: bigint;
  readonly reserved_cents: bigint;
  readonly version: bigint;
  readonly position: bigint;
}

/** Registers QueryService, answered by `reader` from the read models. */
export function registerQueries(router: ConnectRouter, reader: ReadModelReader): void {
  router.service(QueryService, {
    async getWallet(req, context) {
      const walletId = requireId("wallet_id", req.walletId);
      const { value: row, position } = await reader.read("wallets", minPosition(req.minPosition), waitBudget(context), (db) =>
        db.prepare<[string], WalletRow>("SELECT * FROM wallets WHERE wallet_id = ?").get(walletId),
      );
      if (row === undefined) throw new NotInReadModel(`wallet ${walletId}`, position);
      return {
        position: BigInt(position),
        wallet: create(WalletViewSchema, {
          walletId: row.wallet_id,
          ownerId: row.owner_id,
          balanceCents: row.balance_cents,
          reservedCents: row.reserved_cents,
          availableCents: row.balance_cents - row.reserved_cents,
          version: row.version,
          lastPosition: row.position,
        }),
      };
    },
  });
}

function minPosition(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidRequest(`min_position ${value} is beyond any stream position`);
  return Number(value);
}

/** The call's remaining time, at most {@link maxWaitMs}. */
function waitBudget(context: HandlerContext): number {
  return Math.min(maxWaitMs, context.timeoutMs() ?? maxWaitMs);
}
