import { createHash } from "node:crypto";
import { v5 as uuidv5 } from "uuid";
import type { AggregateType } from "../../commands/aggregate-type.js";
import type { CommandOutcome, CommandPipeline } from "../../commands/command-pipeline.js";
import { CommandConflict, ExpectedVersionMismatch, ShuttingDown } from "../../commands/errors.js";
import { artworkType } from "../../commands/marketplace/artwork-routes.js";
import { purchaseType } from "../../commands/marketplace/purchase-routes.js";
import { walletType } from "../../commands/marketplace/wallet-routes.js";
import { quoteSale } from "../../domain/artwork/decide.js";
import type { ArtworkCommand, Payout, SaleQuote } from "../../domain/artwork/types.js";
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
 * - FundsReserved: quote the sale from the artwork as it stands (`quoteSale`: listed at the offered price, buyer
 *   not the owner) → PayoutsQuoted with the seller and the payouts, or Compensating when it is not for sale so.
 * - PayoutsQuoted: make room for each payee's payouts in the wallet whose id is the payee's (ExpectPayment), then
 *   take the artwork (SellArtwork with the quoted payouts) → ArtworkTaken; or Compensating when a wallet has no
 *   room (its balance and the payments it expects would pass the ceiling). When the artwork refuses: PayoutsQuoted
 *   again with a new quote if it is still for sale to the buyer at the price (sold and listed again by its new
 *   owner, a new split), else Compensating (delisted, repriced, burned).
 * - ArtworkTaken: settle the reservation, pay each payout into the room made for it, give back the room made for
 *   earlier quotes in wallets the sale does not pay → Completed.
 * - Compensating: give back the room made in every wallet a quote named, release the reservation → Failed.
 *
 * Why the room comes first: once the artwork is taken the purchase can only go forward, so every payout must be
 * sure to be credited by then. A wallet's balance ceiling counts the payments it expects, so once the room is made
 * no deposit, nor another purchase, can take it; and the artwork sells only for the quoted payouts, those the room
 * was made for. So there is no window between the check and the payment in which a payee's balance can change
 * enough to refuse it. What remains: a purchase recorded ArtworkTaken before room was made for payouts (by an
 * earlier version) still pays without room, and is parked if a wallet is full; and a leader that lost its lease
 * but still runs a step could make room after the purchase gave it back, leaving room held (never money) for a
 * failed purchase, as it could repeat any other step late.
 *
 * Every command's id is derived from the triggering commit's command id and the step, so a replay (after a crash
 * or a change of leader) repeats a step that was done as a no-op that answers the same: nobody is paid twice. A
 * step runs only while the triggering commit is still the purchase's last one; a later commit means its outcome
 * was recorded already. Outcomes are recorded with the purchase's expected version, so two recorders never both
 * succeed. The payouts are recorded (PayoutsQuoted) before any room is made for them, so that every attempt makes
 * room for, and gives back, the same ones. Rebuilding read models never replays this: it has its own checkpoint
 * in the processes bucket.
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

  /** The sale as the artwork stands now: its seller and payouts, or why it is not for sale to the purchase. */
  const quoteNow = async (id: string, p: Started): Promise<{ quote: SaleQuote } | { refused: string }> => {
    const artwork = await pipeline.currentState(artworkType, p.artworkId);
    try {
      return { quote: quoteSale({ artworkId: p.artworkId, purchaseId: id, buyerId: p.buyerId, priceCents: p.priceCents }, artwork) };
    } catch (err) {
      if (err instanceof DomainError) return { refused: err.message };
      throw err;
    }
  };

  /** Cancels what is left of the room the purchase made in each wallet; room never made, or used up, cancels nothing. */
  const giveBackRoom = async (id: string, walletIds: readonly string[], trigger: StoredCommit): Promise<void> => {
    await Promise.all(
      walletIds.map((walletId) => {
        const cancel: WalletCommand = { type: "CancelExpectedPayment", walletId, purchaseId: id };
        return run(walletType, walletId, cancel, trigger, `cancel/${walletId}`);
      }),
    );
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
      const quoted = await quoteNow(id, p);
      await record(id, trigger, "refused" in quoted
        ? { type: "PurchaseCompensating", reason: `the artwork could not be taken: ${quoted.refused}` }
        : { type: "PurchasePayoutsQuoted", ...quoted.quote });
    },

    async PayoutsQuoted(id: string, p: Started, trigger: StoredCommit): Promise<void> {
      // Room for every payout before the artwork is taken: after that, the purchase can only go forward.
      const made = await Promise.all(
        payees(p.payouts).map(([walletId, amountCents], i) => {
          const expect: WalletCommand = { type: "ExpectPayment", walletId, purchaseId: id, amountCents };
          return attempt(walletType, walletId, expect, trigger, `expect/${i}`);
        }),
      );
      const [noRoom] = made.flatMap((result) => ("refused" in result ? [result.refused] : []));
      if (noRoom !== undefined) {
        await record(id, trigger, { type: "PurchaseCompensating", reason: `a payout could not be credited: ${noRoom}` });
        return;
      }
      const sell: ArtworkCommand = {
        type: "SellArtwork",
        artworkId: p.artworkId,
        purchaseId: id,
        buyerId: p.buyerId,
        priceCents: p.priceCents,
        payouts: p.payouts,
      };
      const result = await attempt(artworkType, p.artworkId, sell, trigger, "sell");
      if ("refused" in result) {
        // The artwork changed since the quote. Still for sale to the buyer at the price (sold and listed again by
        // its new owner, a new split): quote again, and the next step makes room for the new payouts; each new
        // quote needs a change of the artwork in between. Otherwise the purchase fails.
        const quoted = await quoteNow(id, p);
        await record(id, trigger, "refused" in quoted
          ? { type: "PurchaseCompensating", reason: `the artwork could not be taken: ${result.refused}` }
          : { type: "PurchasePayoutsQuoted", ...quoted.quote });
        return;
      }
      const sold = result.outcome.events.find((e) => e.type === "ArtworkSold");
      if (sold?.type !== "ArtworkSold") throw new Error(`the sale of artwork ${p.artworkId} for purchase ${id} recorded no ArtworkSold`);
      await record(id, trigger, { type: "PurchaseArtworkTaken", sellerId: sold.sellerId, payouts: sold.payouts });
    },

    async ArtworkTaken(id: string, p: Started, trigger: StoredCommit, roomIn: readonly string[]): Promise<void> {
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
      // Room made for an earlier quote in a wallet the sale does not pay.
      const paid = new Set(p.payouts.map((payout) => payout.recipientId));
      await giveBackRoom(id, roomIn.filter((walletId) => !paid.has(walletId)), trigger);
      await record(id, trigger, { type: "PurchaseCompleted" });
    },

    async Compensating(id: string, p: Started, trigger: StoredCommit, roomIn: readonly string[]): Promise<void> {
      await giveBackRoom(id, roomIn, trigger);
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
      // Every wallet a quote named, in the order first named: where the purchase may have made room.
      const roomIn = new Set<string>();
      for (const c of await store.readAggregate(commit.subject, { lastSeq: commit.seq })) {
        for (const record of c.events) {
          const event = purchaseType.decodeEvent(record);
          if (event.type === "PurchasePayoutsQuoted") for (const payout of event.payouts) roomIn.add(payout.recipientId);
          state = evolve(state, event);
        }
      }
      if (state.status === "Empty" || state.status === "Completed" || state.status === "Failed") return;
      await steps[state.status](id, state, commit, [...roomIn]);
    },
    transient: (err) =>
      err instanceof UnavailableError ||
      err instanceof CommandConflict ||
      err instanceof ShuttingDown,
  };
}

/** What the payouts pay each wallet, in the payouts' order: a party may receive a royalty and the proceeds. */
function payees(payouts: readonly Payout[]): [walletId: string, amountCents: bigint][] {
  const due = new Map<string, bigint>();
  for (const { recipientId, amountCents } of payouts) due.set(recipientId, (due.get(recipientId) ?? 0n) + amountCents);
  return [...due];
}
