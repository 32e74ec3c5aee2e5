import { quoteSale } from "../artwork/decide.js";
import type { ArtworkCommand, ArtworkState } from "../artwork/types.js";
import { NotFoundError } from "../errors.js";
import type { WalletCommand, WalletState } from "../wallet/types.js";
import type { PurchaseCommand, PurchaseState, PurchaseTerms } from "./types.js";

/**
 * What a purchase made in one command reads and decides through: every aggregate it involves, as the purchase
 * has changed it so far. Each `decide…` runs that aggregate's decider on its current state and keeps the events,
 * or throws its refusal. The engine stores all the events kept, or none (see the command pipeline's `transact`).
 */
export interface PurchaseParties {
  purchase(purchaseId: string): Promise<PurchaseState>;
  artwork(artworkId: string): Promise<ArtworkState>;
  wallet(walletId: string): Promise<WalletState>;
  decidePurchase(purchaseId: string, command: PurchaseCommand): Promise<unknown>;
  decideArtwork(artworkId: string, command: ArtworkCommand): Promise<unknown>;
  decideWallet(walletId: string, command: WalletCommand): Promise<unknown>;
}

/** A buyer's request to buy an artwork at its listed price, now. */
export interface BuyArtwork extends PurchaseTerms {
  readonly purchaseId: string;
}

/**
 * Buys an artwork in one atomic decision over the purchase, the artwork, the buyer's wallet and every payee's
 * wallet: the artwork is sold to the buyer with its payouts (`SellArtwork`), the price reserved and settled in the
 * buyer's wallet under the purchase's id, each payout paid into its wallet (`ReceivePayment`), and the purchase
 * recorded completed (`CompletePurchase`). Either all of it happens or, when any part is refused, none of it.
 *
 * Refusals, in this order: the purchase id is used (`AlreadyExistsError`) or its terms incomplete
 * (`InvalidCommand`); the artwork is not for sale to the buyer at the price (as `quoteSale` refuses); the buyer's
 * wallet does not exist or cannot pay; a payee's wallet does not exist (`NotFoundError`: a payout goes only to a
 * wallet someone opened) or cannot take its payout (the balance ceiling).
 */
export async function buyArtwork(request: BuyArtwork, parties: PurchaseParties): Promise<void> {
  const { purchaseId, artworkId, buyerId, buyerWalletId, priceCents } = request;
  const terms = { artworkId, buyerId, buyerWalletId, priceCents };
  // The purchase first, so that a used id is refused as such whatever became of the artwork since.
  const [purchase, artwork] = await Promise.all([parties.purchase(purchaseId), parties.artwork(artworkId)]);
  if (purchase.status !== "Empty") {
    await parties.decidePurchase(purchaseId, { type: "CompletePurchase", purchaseId, ...terms, sellerId: "", payouts: [] });
  }
  const { sellerId, payouts } = quoteSale({ artworkId, purchaseId, buyerId, priceCents }, artwork);
  // Every wallet involved, read at once rather than one after the other.
  await Promise.all([buyerWalletId, ...payouts.map((p) => p.recipientId)].map((walletId) => parties.wallet(walletId)));
  await parties.decideArtwork(artworkId, { type: "SellArtwork", artworkId, purchaseId, buyerId, priceCents, payouts });
  const reservation = { walletId: buyerWalletId, reservationId: purchaseId, purchaseId };
  await parties.decideWallet(buyerWalletId, { type: "ReserveFunds", ...reservation, amountCents: priceCents });
  await parties.decideWallet(buyerWalletId, { type: "SettleReservation", ...reservation });
  for (const { recipientId: walletId, amountCents, kind } of payouts) {
    if ((await parties.wallet(walletId)).status === "Empty") {
      const what = kind === "Royalty" ? "a royalty" : "the proceeds";
      throw new NotFoundError(`wallet ${walletId}, which artwork ${artworkId} pays ${what} of ${amountCents} cents into, does not exist`);
    }
    await parties.decideWallet(walletId, { type: "ReceivePayment", walletId, purchaseId, artworkId, amountCents, kind });
  }
  // Last, so that its commit ends the batch: its position is the whole purchase's.
  await parties.decidePurchase(purchaseId, { type: "CompletePurchase", purchaseId, ...terms, sellerId, payouts });
}
