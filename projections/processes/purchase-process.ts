import { createHash } from "node:crypto";
import { v5 as uuidv5 } from "uuid";
import type { AggregateType } from "../../commands/aggregate-type.js";
import type { CommandOutcome, CommandPipeline } from "../../commands/command-pipeline.js";
import { CommandConflict, CommandInProgress, ExpectedVersionMismatch, ShuttingDown } from "../../commands/errors.js";
import { artworkType } from "../../commands/marketplace/artwork-routes.js";
import { purchaseType } from "../../commands/marketplace/purchase-routes.js";
import { walletType } from "../../commands/marketplace/wallet-routes.js";
import type { ArtworkCommand } from "../../domain/artwork/types.js";
import { DomainError } from "../../domain/errors.js";
import { evolve, initialState } from "../../domain/purchase/evolve.js";
import type { PurchaseState, PurchaseStep } from "../../domain/purchase/types.js";
import type { WalletCommand } from "../../domain/wallet/types.js";
import type { EventStore, StoredCommit } from "../../streams/event-store.js";
import { UnavailableError } from "../../streams/errors.js";
import type { Reaction } from "../reactor.js";

const subjectPrefix = "ev.purchase.";
/** The namespace of the command ids the process derives (UUID v5 of the triggering command id and the step). */
const commandIdNamespace = "0b4c9f3e-52a1-4d6b-9a57-3f1d2c8e6a90";
const actor = "purchase-process";
/** JSON with bigints as decimal strings: the bytes that identify a command the process sends. */
const json = (value: unknown): string => JSON.stringify(value, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v));

type Started = Exclude<PurchaseState, { status: "Empty" }>;

/**
 * The purchase process manager: it takes each purchase (`ev.purchase.<id>`) from one stage to the next, reacting
 * to the purchase's own last commit.
 *
 * - Started: reserve the price in the buyer's wallet under the purchase's id → FundsReserved, or Failed when the
 *   wallet refuses (no such wallet, not enough money).
 * - FundsReserved: take the artwork (SellArtwork: listed at the offered price, buyer not the owner) → ArtworkTaken
 *   with the payouts, or Compensating when the artwork refuses (sold meanwhile, delisted, repriced, burned).
 * - ArtworkTaken: settle the reservation, pay each payout into the wallet whose id is the recipient's → Completed.
 * - Compensating: release the reservation → Failed.
 *
 * Every command's id is derived from the triggering commit's command id and the step, so a replay (after a crash
 * or a change of leader) repeats a step that was done as a no-op that answers the same: nobody is paid twice. A
 * step runs only while the triggering commit is still the purchase's last one; a later commit means its outcome
 * was recorded already. Outcomes are recorded with the purchase's expected version, so two recorders never both
 * succeed. Rebuilding read models never replays this: it has its own checkpoint in the processes bucket.
 */
export function purchaseProcess(options: { readonly store: EventStore; readonly pipeline: CommandPipeline }): Reaction {
  const { store, pipeline } = options;

  const run = <C, E, S>(
    type: AggregateType<C, E, S>,
    aggregateId: string,
    command: C,
    trigger: StoredCommit,
    step: string,
    expectedVersion?: number,
  ): Promise<CommandOutcome<E>> => {
    const request = new TextEncoder().encode(json(command));
    const { commandId, correlationId } = trigger.metadata;
    return pipeline.execute(type, {
      aggregateId,
      command,
      commandId: uuidv5(`${commandId}/${step}`, commandIdNamespace),
      ...(expectedVersion === undefined ? {} : { expectedVersion }),
      actor,
      correlationId: correlationId === "" ? commandId : correlationId,
      causationId: commandId,
      requestType: `foldline.process.purchase.${step}`,
      request,
    });
  };

  /** Records a step's outcome; a purchase already past the trigger (recorded by an earlier attempt) is left alone. */
  const record = async (purchaseId: string, trigger: StoredCommit, event: PurchaseStep): Promise<void> => {
    const command = { type: "RecordStep" as const, purchaseId, event };
    // The id covers the outcome: a replay that reaches another outcome (a refusal's reason can change) is not a
    // reuse of the id with another request. The expected version lets only one outcome through.
    const digest = createHash("sha256").update(json(event)).digest("hex");
    try {
      await run(purchaseType, purchaseId, command, trigger, `record/${digest.slice(0, 32)}`, trigger.metadata.aggregateVersion);
    } catch (err) {
      if (!(err instanceof ExpectedVersionMismatch)) throw err;
    }
  };

  /** Runs a command of another aggregate; answers the refusal's message when it refuses, undefined when done. */
  const attempt = async <C, E, S>(
    type: AggregateType<C, E, S>,
    aggregateId: string,
    command: C,
    trigger: StoredCommit,
    step: string,
  ): Promise<{ outcome: CommandOutcome<E> } | { refused: string }> => {
    try {
      return { outcome: await run(type, aggregateId, command, trigger, step) };
    } catch (err) {
      if (err instanceof DomainError) return { refused: err.message };
      throw err;
    }
  };

  const steps = {
    async Started(id: string, p: Started, trigger: StoredCommit): Promise<void> {
      const reserve: WalletCommand = {
        type: "ReserveFunds",
        walletId: p.buyerWalletId,
        reservationId: id,
        amountCents: p.priceCents,
        purchaseId: id,
      };
      const result = await attempt(walletType, p.buyerWalletId, reserve, trigger, "reserve");
      await record(id, trigger, "refused" in result
        ? { type: "PurchaseFailed", reason: `the price could not be reserved: ${result.refused}` }
        : { type: "PurchaseFundsReserved" });
    },

    async FundsReserved(id: string, p: Started, trigger: StoredCommit): Promise<void> {
      const sell: ArtworkCommand = {
        type: "SellArtwork",
        artworkId: p.artworkId,
        purchaseId: id,
        buyerId: p.buyerId,
        priceCents: p.priceCents,
      };
      const result = await attempt(artworkType, p.artworkId, sell, trigger, "sell");
      if ("refused" in result) {
        await record(id, trigger, { type: "PurchaseCompensating", reason: `the artwork could not be taken: ${result.refused}` });
        return;
      }
      const sold = result.outcome.events.find((e) => e.type === "ArtworkSold");
      if (sold?.type !== "ArtworkSold") throw new Error(`the sale of artwork ${p.artworkId} for purchase ${id} recorded no ArtworkSold`);
      await record(id, trigger, { type: "PurchaseArtworkTaken", sellerId: sold.sellerId, payouts: sold.payouts });
    },

    async ArtworkTaken(id: string, p: Started, trigger: StoredCommit): Promise<void> {
      const settle: WalletCommand = { type: "SettleReservation", walletId: p.buyerWalletId, reservationId: id, purchaseId: id };
      await run(walletType, p.buyerWalletId, settle, trigger, "settle");
      await Promise.all(
        p.payouts.map((payout, i) => {
          const pay: WalletCommand = {
            type: "ReceivePayment",
            walletId: payout.recipientId,
            purchaseId: id,
            artworkId: p.artworkId,
            amountCents: payout.amountCents,
            kind: payout.kind,
          };
          return run(walletType, payout.recipientId, pay, trigger, `pay/${i}`);
        }),
      );
      await record(id, trigger, { type: "PurchaseCompleted" });
    },

    async Compensating(id: string, p: Started, trigger: StoredCommit): Promise<void> {
      const release: WalletCommand = { type: "ReleaseReservation", walletId: p.buyerWalletId, reservationId: id, purchaseId: id };
      await run(walletType, p.buyerWalletId, release, trigger, "release");
      await record(id, trigger, { type: "PurchaseFailed", reason: p.reason });
    },
  };

  return {
    name: "purchases",
    subjectFilter: `${subjectPrefix}>`,
    key: (commit) => (commit.subject.startsWith(subjectPrefix) ? commit.subject : undefined),
    async react(commit) {
      // Due only while this commit is the purchase's last: otherwise its outcome is recorded already.
      if ((await store.lastSequence(commit.subject)) !== commit.seq) return;
      const id = commit.subject.slice(subjectPrefix.length);
      let state: PurchaseState = initialState;
      for (const c of await store.readAggregate(commit.subject, { lastSeq: commit.seq })) {
        for (const record of c.events) state = evolve(state, purchaseType.decodeEvent(record));
      }
      if (state.status === "Empty" || state.status === "Completed" || state.status === "Failed") return;
      await steps[state.status](id, state, commit);
    },
    transient: (err) =>
      err instanceof UnavailableError ||
      err instanceof CommandConflict ||
      err instanceof CommandInProgress ||
      err instanceof ShuttingDown,
  };
}
