import { assertNever } from "../assert-never.js";
import { AlreadyExistsError, InvalidCommand, NotFoundError, RuleViolation } from "../errors.js";
import { findExpected, roomLeft, type OpenWallet } from "./expected-payments.js";
import { maxBalanceCents, type Reservation, type WalletCommand, type WalletEvent, type WalletState } from "./types.js";

/**
 * Decides what a wallet command causes. Pure; returns `[]` when the command changes nothing (reserving again under
 * a held reservation id with the same amount, expecting a payment again with the same amount, cancelling what was
 * never expected, was received or is cancelled already). Expecting a payment again with another amount, before any
 * of it arrived, resizes the room (a purchase quoting its sale again).
 *
 * A purchase's payout (`ReceivePayment`), and the room a purchase makes for it beforehand (`ExpectPayment`), go
 * to any wallet id: they open the wallet for the party of that id when needed. `CancelExpectedPayment` on a wallet
 * never opened cancels nothing.
 *
 * Checks run in one fixed order, and the first failing one is thrown:
 *
 * 1. existence: opening an open wallet → `AlreadyExistsError`; anything else on an unopened wallet →
 *    `NotFoundError`;
 * 2. the command's own data (non-empty owner and reservation ids, positive amounts) → `InvalidCommand`;
 * 3. business rules against the state (available funds, the balance ceiling, a reservation's life, an expected
 *    payment's life) → `RuleViolation`, or `[]` for an idempotent repeat; otherwise the events.
 *
 * Available funds are `balanceCents - reservedCents`: withdrawals and new reservations draw on them only. The
 * balance ceiling (`maxBalanceCents`) holds the balance together with the payments purchases expect to make into
 * the wallet: a deposit or another purchase's room may not take what one purchase made room for, so that every
 * payment expected fits when it arrives.
 */
export function decide(command: WalletCommand, state: WalletState): WalletEvent[] {
  if (command.type === "ReceivePayment") return receivePayment(command, state);
  if (command.type === "ExpectPayment") return expectPayment(command, state);
  if (command.type === "CancelExpectedPayment") return cancelExpectedPayment(command, state);
  if (command.type === "OpenWallet") {
    if (state.status !== "Empty") throw new AlreadyExistsError(`wallet ${command.walletId} already exists`);
    if (command.ownerId === "") throw new InvalidCommand(`wallet ${command.walletId} needs an owner id`);
    return [{ type: "WalletOpened", ownerId: command.ownerId }];
  }
  if (state.status === "Empty") throw new NotFoundError(`wallet ${command.walletId} does not exist`);
  switch (command.type) {
    case "Deposit": {
      requirePositive(command.amountCents, "deposit");
      requireRoom(state, command.walletId, command.amountCents, `deposit of ${command.amountCents}`);
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
  // What the purchase made room for is the wallet's already: only the rest must fit.
  const roomMade = roomLeft(findExpected(state, purchaseId));
  requireRoom(state, command.walletId, amountCents, `payment of ${amountCents}`, roomMade < amountCents ? roomMade : amountCents);
  return [paid];
}

/** Makes room for a purchase's payment, opening the wallet for the party whose id it has when there is none yet. */
function expectPayment(command: Extract<WalletCommand, { type: "ExpectPayment" }>, state: WalletState): WalletEvent[] {
  const { walletId, purchaseId, amountCents } = command;
  if (purchaseId === "") throw new InvalidCommand("an expected payment needs a purchase id");
  requirePositive(amountCents, "expected payment");
  const expectedEvent: WalletEvent = { type: "PaymentExpected", purchaseId, amountCents };
  if (state.status === "Empty") return [{ type: "WalletOpened", ownerId: walletId }, expectedEvent];
  const existing = findExpected(state, purchaseId);
  if (existing !== undefined && existing.status !== "Expected") {
    throw new RuleViolation(
      `the payment wallet ${walletId} expected from purchase ${purchaseId} was ${existing.status === "Received" ? "received" : "cancelled"}; ` +
        "a purchase makes room once",
    );
  }
  if (existing?.amountCents === amountCents) return [];
  // A purchase that quoted its sale again (the artwork changed hands or split) resizes its room, before any of it
  // is paid.
  if (existing !== undefined && existing.receivedCents > 0n) {
    throw new RuleViolation(
      `wallet ${walletId} has received ${existing.receivedCents} of the ${existing.amountCents} expected from purchase ` +
        `${purchaseId}; requested ${amountCents}`,
    );
  }
  requireRoom(state, walletId, amountCents, `payment of ${amountCents} for purchase ${purchaseId}`, existing?.amountCents ?? 0n);
  return [expectedEvent];
}

/** Gives back what is left of the room a purchase made; nothing to do when it made none, or none is left. */
function cancelExpectedPayment(
  command: Extract<WalletCommand, { type: "CancelExpectedPayment" }>,
  state: WalletState,
): WalletEvent[] {
  const { purchaseId } = command;
  if (purchaseId === "") throw new InvalidCommand("an expected payment needs a purchase id");
  if (state.status === "Empty") return [];
  const expected = findExpected(state, purchaseId);
  if (expected?.status !== "Expected") return [];
  return [{ type: "ExpectedPaymentCancelled", purchaseId, amountCents: roomLeft(expected) }];
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

/**
 * Throws unless the wallet can take `amountCents` more, `roomMadeCents` of which a purchase made room for already:
 * the balance and the payments still expected (less that room) must stay at or below the ceiling.
 */
function requireRoom(state: OpenWallet, walletId: string, amountCents: bigint, what: string, roomMadeCents = 0n): void {
  const balanceCents = state.balanceCents + amountCents;
  const expectedCents = (state.expectedCents ?? 0n) - roomMadeCents;
  if (balanceCents + expectedCents <= maxBalanceCents) return;
  const others = expectedCents > 0n ? ` with ${expectedCents} more expected from purchases` : "";
  throw new RuleViolation(
    `${what} would take the balance of wallet ${walletId} to ${balanceCents}${others}, above the maximum ${maxBalanceCents}`,
  );
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
