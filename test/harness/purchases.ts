import { randomUUID } from "node:crypto";
import type { CommandOutcome, CommandPipeline } from "../../commands/command-pipeline.js";
import { decodeArtworkEvent } from "../../commands/marketplace/artwork-events.js";
import { decodePurchaseEvent } from "../../commands/marketplace/purchase-events.js";
import { purchaseType } from "../../commands/marketplace/purchase-routes.js";
import { decodeWalletEvent } from "../../commands/marketplace/wallet-events.js";
import { artworkDecider } from "../../domain/artwork/decider.js";
import type { ArtworkEvent, ArtworkState } from "../../domain/artwork/types.js";
import { purchaseDecider } from "../../domain/purchase/decider.js";
import type { PurchaseCommand, PurchaseEvent, PurchaseState } from "../../domain/purchase/types.js";
import { walletDecider } from "../../domain/wallet/decider.js";
import type { WalletEvent, WalletState } from "../../domain/wallet/types.js";
import type { EventStore } from "../../streams/event-store.js";

/** The whole marketplace folded by the domain itself from the stream, with the money movements listed. */
export interface Marketplace {
  readonly wallets: Map<string, WalletState>;
  readonly artworks: Map<string, ArtworkState>;
  readonly purchases: Map<string, PurchaseState>;
  /** Every PaymentReceived, with the wallet it went to. */
  readonly payments: (Extract<WalletEvent, { type: "PaymentReceived" }> & { readonly walletId: string })[];
  /** Every ArtworkSold, with its artwork. */
  readonly sales: (Extract<ArtworkEvent, { type: "ArtworkSold" }> & { readonly artworkId: string; readonly position: number })[];
  /** Sums of FundsDeposited and FundsWithdrawn: the money that entered and left the marketplace. */
  readonly deposited: bigint;
  readonly withdrawn: bigint;
}

/** Reads the whole stream and folds every aggregate with the domain's own `evolve`. */
export async function marketplaceFromStream(store: EventStore): Promise<Marketplace> {
  const m: Marketplace = {
    wallets: new Map(),
    artworks: new Map(),
    purchases: new Map(),
    payments: [],
    sales: [],
    deposited: 0n,
    withdrawn: 0n,
  };
  let deposited = 0n;
  let withdrawn = 0n;
  for await (const commit of store.readAll()) {
    const [, kind, id = ""] = commit.subject.split(".");
    for (const record of commit.events) {
      if (kind === "wallet") {
        const event = decodeWalletEvent(record);
        m.wallets.set(id, walletDecider.evolve(m.wallets.get(id) ?? walletDecider.initialState, event));
        if (event.type === "FundsDeposited") deposited += event.amountCents;
        if (event.type === "FundsWithdrawn") withdrawn += event.amountCents;
        if (event.type === "PaymentReceived") m.payments.push({ ...event, walletId: id });
      } else if (kind === "artwork") {
        const event = decodeArtworkEvent(record);
        m.artworks.set(id, artworkDecider.evolve(m.artworks.get(id) ?? artworkDecider.initialState, event));
        if (event.type === "ArtworkSold") m.sales.push({ ...event, artworkId: id, position: commit.seq });
      } else if (kind === "purchase") {
        const event = decodePurchaseEvent(record);
        m.purchases.set(id, purchaseDecider.evolve(m.purchases.get(id) ?? purchaseDecider.initialState, event));
      }
    }
  }
  return { ...m, deposited, withdrawn };
}

/**
 * Starts a purchase the way an earlier foldline did (today's BuyArtwork is one atomic command), for the purchase
 * process manager to carry out step by step.
 */
export function startStepByStep(
  pipeline: CommandPipeline,
  start: Omit<Extract<PurchaseCommand, { type: "StartPurchase" }>, "type">,
): Promise<CommandOutcome<PurchaseEvent>> {
  return pipeline.execute(purchaseType, {
    aggregateId: start.purchaseId,
    command: { type: "StartPurchase", ...start },
    commandId: randomUUID(),
    actor: start.buyerId,
    correlationId: "",
    causationId: "",
    requestType: "foldline.test.StartPurchase",
    request: new TextEncoder().encode(`${start.purchaseId}/${start.priceCents}`),
  });
}
