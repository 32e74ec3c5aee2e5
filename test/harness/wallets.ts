import { randomUUID } from "node:crypto";
import { decodeWalletEvent } from "../../commands/marketplace/wallet-events.js";
import { walletDecider } from "../../domain/wallet/decider.js";
import type { WalletState } from "../../domain/wallet/types.js";
import type { ReadModelDb } from "../../projections/read-model-db.js";
import type { WalletRow } from "../../projections/read-models/wallets.js";
import type { EventStore } from "../../streams/event-store.js";
import type { Clients } from "./app.js";

export type { WalletRow };

/** Every wallet of the stream, folded by the domain itself: what the read model must equal. */
export async function walletsFromStream(store: EventStore): Promise<WalletRow[]> {
  const wallets = new Map<string, { state: WalletState; version: number; position: number }>();
  for await (const commit of store.readAll({ subjectFilter: "ev.wallet.>" })) {
    const id = commit.subject.slice("ev.wallet.".length);
    const current = wallets.get(id) ?? { state: walletDecider.initialState, version: 0, position: 0 };
    let state = current.state;
    for (const record of commit.events) state = walletDecider.evolve(state, decodeWalletEvent(record));
    wallets.set(id, { state, version: commit.metadata.aggregateVersion, position: commit.seq });
  }
  return [...wallets]
    .flatMap(([id, w]) =>
      w.state.status === "Open"
        ? [
            {
              wallet_id: id,
              owner_id: w.state.ownerId,
              balance_cents: w.state.balanceCents,
              reserved_cents: w.state.reservedCents,
              version: BigInt(w.version),
              position: BigInt(w.position),
            },
          ]
        : [],
    )
    .sort((a, b) => a.wallet_id.localeCompare(b.wallet_id));
}

/** The `wallets` read model's rows, in the same order. */
export function walletsFromReadModel(db: ReadModelDb): WalletRow[] {
  return db.prepare<[], WalletRow>("SELECT * FROM wallets ORDER BY wallet_id").all().sort((a, b) => a.wallet_id.localeCompare(b.wallet_id));
}

/**
 * Sends a random mix of wallet commands (deposits, withdrawals, reservations released or settled) to `wallets`
 * until `count` have been answered; refusals (insufficient funds) are part of the mix. Returns the highest
 * position answered.
 */
export async function walletTraffic(c: Clients, wallets: readonly string[], count: number, concurrency = 16): Promise<number> {
  let sent = 0;
  let highest = 0;
  const worker = async (): Promise<void> => {
    while (sent < count) {
      const n = sent++;
      const walletId = wallets[n % wallets.length] ?? "";
      const metadata = { commandId: randomUUID() };
      const amountCents = BigInt(1 + (n % 7) * 13);
      const pick = n % 5;
      try {
        const res =
          pick === 0 || pick === 1
            ? await c.wallet.deposit({ metadata, walletId, amountCents })
            : pick === 2
              ? await c.wallet.withdraw({ metadata, walletId, amountCents })
              : await c.wallet.reserveFunds({ metadata, walletId, reservationId: `r-${n}`, amountCents });
        highest = Math.max(highest, Number(res.result?.position ?? 0n));
        if (pick >= 3) {
          const close = pick === 3 ? c.wallet.releaseReservation : c.wallet.settleReservation;
          const closed = await close({ metadata: { commandId: randomUUID() }, walletId, reservationId: `r-${n}` });
          highest = Math.max(highest, Number(closed.result?.position ?? 0n));
        }
      } catch {
        // Refused (insufficient funds): part of the traffic.
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return highest;
}

/** Opens `n` wallets with fresh ids. */
export async function openWallets(c: Clients, n: number, prefix: string): Promise<string[]> {
  const ids = Array.from({ length: n }, (_, i) => `${prefix}-${i}-${randomUUID().slice(0, 8)}`);
  await Promise.all(ids.map((walletId) => c.wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId, ownerId: "ada" })));
  return ids;
}
