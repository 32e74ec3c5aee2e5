import { decodeWalletEvent } from "../../commands/marketplace/wallet-events.js";
import type { Projection } from "../projector.js";

const subjectPrefix = "ev.wallet.";

/** A row of the `wallets` table, as better-sqlite3 returns it (integers as bigint). */
export interface WalletRow {
  readonly wallet_id: string;
  readonly owner_id: string;
  readonly balance_cents: bigint;
  readonly reserved_cents: bigint;
  readonly version: bigint;
  /** The stream sequence of the wallet's last commit. */
  readonly position: bigint;
}

/**
 * The `wallets` read model: one row per wallet with its balance, the part of it reserved, its version and the
 * position of its last commit; and one row per reservation with its state. Available money is
 * `balance_cents - reserved_cents`.
 */
export const walletsProjection: Projection = {
  name: "wallets",

  migrate(db) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS wallets (
        wallet_id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        balance_cents INTEGER NOT NULL,
        reserved_cents INTEGER NOT NULL,
        version INTEGER NOT NULL,
        position INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE IF NOT EXISTS wallet_reservations (
        wallet_id TEXT NOT NULL,
        reservation_id TEXT NOT NULL,
        amount_cents INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('held', 'released', 'settled')),
        PRIMARY KEY (wallet_id, reservation_id)
      ) STRICT;
    `);
  },

  prepare(db) {
    const open = db.prepare<[string, string]>(
      "INSERT INTO wallets (wallet_id, owner_id, balance_cents, reserved_cents, version, position) VALUES (?, ?, 0, 0, 0, 0)",
    );
    const reserve = db.prepare<[string, string, bigint]>(
      "INSERT INTO wallet_reservations (wallet_id, reservation_id, amount_cents, status) VALUES (?, ?, ?, 'held')",
    );
    const close = db.prepare<[string, string, string]>(
      "UPDATE wallet_reservations SET status = ? WHERE wallet_id = ? AND reservation_id = ?",
    );
    // One statement per commit for the wallet's row: a commit's money moves are summed first. A rebuild runs
    // this for nearly every commit of the stream, and statements are most of what applying one costs.
    const moveAndStamp = db.prepare<[bigint, bigint, number, number, string]>(
      `UPDATE wallets SET balance_cents = balance_cents + ?, reserved_cents = reserved_cents + ?, version = ?, position = ?
       WHERE wallet_id = ?`,
    );
    return (commit) => {
      if (!commit.subject.startsWith(subjectPrefix)) return;
      const walletId = commit.subject.slice(subjectPrefix.length);
      let balance = 0n;
      let reserved = 0n;
      for (const record of commit.events) {
        const event = decodeWalletEvent(record);
        switch (event.type) {
          case "WalletOpened":
            open.run(walletId, event.ownerId);
            break;
          case "FundsDeposited":
            balance += event.amountCents;
            break;
          case "FundsWithdrawn":
            balance -= event.amountCents;
            break;
          case "PaymentReceived":
            balance += event.amountCents;
            break;
          case "FundsReserved":
            reserve.run(walletId, event.reservationId, event.amountCents);
            reserved += event.amountCents;
            break;
          case "ReservationReleased":
            close.run("released", walletId, event.reservationId);
            reserved -= event.amountCents;
            break;
          case "ReservationSettled":
            close.run("settled", walletId, event.reservationId);
            balance -= event.amountCents;
            reserved -= event.amountCents;
            break;
        }
      }
      moveAndStamp.run(balance, reserved, commit.metadata.aggregateVersion, commit.seq, walletId);
    };
  },
};
