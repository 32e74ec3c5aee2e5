import { assertNever } from "../assert-never.js";
import { AlreadyExistsError, InvalidCommand, NotFoundError, RuleViolation } from "../errors.js";
import { maxBalanceCents, type Reservation, type WalletCommand, type WalletEvent, type WalletState } from "./types.js";

type OpenWallet = Extract<WalletState, { status: "Open" }>;

/**
 * Decides what a wallet command causes. Pure; returns `[]` when the command changes nothing (reserving again under
 * a held reservation id with the same amount).
 *
 * Checks run in one fixed order, and the first failing one is thrown:
 * A payout (`ReceivePayment`) goes to any wallet id: it opens the wallet for the party of that id when needed.
 *
 * 1. existence: opening an open wallet → `AlreadyExistsError`; anything else on an unopened wallet →
 *    `NotFoundError`;
 * 2. the command's own data (non-empty owner and reservation ids, positive amounts) → `InvalidCommand`;
 * 3. business rules against the state (available funds, the balance ceiling, a reservation's life) →
 *    `RuleViolation`, or `[]` for an idempotent repeat; otherwise the events.
 *
 * Available funds are `balanceCents - reservedCents`: withdrawals and new reservations draw on them only.
 */
export function decide(command: WalletCommand, state: WalletState): WalletEvent[] {
  if (command.type === "ReceivePayment") return receivePayment(command, state);
  if (command.type === "OpenWallet") {
    if (state.status !== "Empty") throw new AlreadyExistsError(`wallet ${command.walletId} already exists`);
    if (command.ownerId === "") throw new InvalidCommand(`wallet ${command.walletId} needs an owner id`);
    return [{ type: "WalletOpened", ownerId: command.ownerId }];
  }
  if (state.status === "Empty") throw new NotFoundError(`wallet ${command.walletId} does not exist`);
  switch (command.type) {
    case "Deposit": {
      requirePositive(command.amountCents, "deposit");
      requireBelowCeiling(state.balanceCents + command.amountCents, `deposit of ${command.amountCents}`, command.walletId);
      return [{ type: "FundsDeposited", amountCents: command.amountCents }];
    }
    case "Withdraw":
      requirePositive(command.amountCents, "withdrawal");
      requireAvailable(state, command.amountCents);
      return [{ type: "FundsWithdrawn", amountCents: command.amountCents }];
    case "ReserveFunds":
      return reserve(command, state);
    case "ReleaseReservation":
      return [{ type: "ReservationReleased", ...heldReservation(command, state) }];
    case "SettleReservation":
      return [{ type: "ReservationSettled", ...heldReservation(command, state) }];
    default:
      return assertNever(command);
  }
}

function reserve(command: Extract<WalletCommand, { type: "ReserveFunds" }>, state: OpenWallet): WalletEvent[] {
  requireReservationId(command.reservationId);
  requirePositive(command.amountCents, "reservation");
  const existing = findReservation(state, command.reservationId);
  if (existing !== undefined) {
    if (existing.purchaseId !== command.purchaseId) {
      const holder = existing.purchaseId === undefined ? "not by a purchase" : `by purchase ${existing.purchaseId}`;
      throw new RuleViolation(`reservation ${command.reservationId} already exists, held ${holder}`);
    }
    if (existing.status === "Held" && existing.amountCents === command.amountCents) return [];
    if (existing.status === "Held") {
      throw new RuleViolation(
        `reservation ${command.reservationId} already holds ${existing.amountCents}; requested ${command.amountCents}`,
      );
    }
    throw new RuleViolation(
      `reservation ${command.reservationId} was already ${closedVerb(existing.status)}; a reservation id is used once`,
    );
  }
  requireAvailable(state, command.amountCents);
  const { reservationId, amountCents, purchaseId } = command;
  return [{ type: "FundsReserved", reservationId, amountCents, ...(purchaseId === undefined ? {} : { purchaseId }) }];
}

/** Credits a payout, opening the wallet for the party whose id it has when there is none yet. */
function receivePayment(command: Extract<WalletCommand, { type: "ReceivePayment" }>, state: WalletState): WalletEvent[] {
  requirePositive(command.amountCents, "payment");
  const { purchaseId, artworkId, amountCents, kind } = command;
  const paid: WalletEvent = { type: "PaymentReceived", purchaseId, artworkId, amountCents, kind };
  if (state.status === "Empty") return [{ type: "WalletOpened", ownerId: command.walletId }, paid];
  requireBelowCeiling(state.balanceCents + amountCents, `payment of ${amountCents}`, command.walletId);
  return [paid];
}

/** Returns the id and amount of a held reservation, or throws why it cannot be released or settled. */
function heldReservation(
  command: Extract<WalletCommand, { type: "ReleaseReservation" | "SettleReservation" }>,
  state: OpenWallet,
): { reservationId: string; amountCents: bigint } {
  requireReservationId(command.reservationId);
  const reservation = findReservation(state, command.reservationId);
  if (reservation === undefined) {
    throw new RuleViolation(`no reservation ${command.reservationId} in wallet ${command.walletId}`);
  }
  if (reservation.purchaseId !== undefined && reservation.purchaseId !== command.purchaseId) {
    throw new RuleViolation(
      `reservation ${command.reservationId} is held by purchase ${reservation.purchaseId}; only the purchase closes it`,
    );
  }
  if (reservation.status !== "Held") {
    throw new RuleViolation(
      `reservation ${command.reservationId} was already ${closedVerb(reservation.status)}; ` +
        "a reservation is closed once",
    );
  }
  return { reservationId: command.reservationId, amountCents: reservation.amountCents };
}

// Object.hasOwn, so that an id such as "constructor" never finds an inherited property.
function findReservation(state: OpenWallet, reservationId: string): Reservation | undefined {
  return Object.hasOwn(state.reservations, reservationId) ? state.reservations[reservationId] : undefined;
}

function closedVerb(status: "Released" | "Settled"): string {
  return status === "Released" ? "released" : "settled";
}

function requireBelowCeiling(balanceCents: bigint, what: string, walletId: string): void {
  if (balanceCents > maxBalanceCents) {
    throw new RuleViolation(
      `${what} would take the balance of wallet ${walletId} to ${balanceCents}, above the maximum ${maxBalanceCents}`,
    );
  }
}

function requirePositive(amountCents: bigint, what: string): void {
  if (amountCents <= 0n) throw new InvalidCommand(`${what} amount must be positive; got ${amountCents} cents`);
}

function requireReservationId(reservationId: string): void {
  if (reservationId === "") throw new InvalidCommand("reservation id must not be empty");
}

function requireAvailable(state: OpenWallet, requestedCents: bigint): void {
  const available = state.balanceCents - state.reservedCents;
  if (requestedCents > available) {
    throw new RuleViolation(`insufficient funds: available ${available}, requested ${requestedCents}`);
  }
}
