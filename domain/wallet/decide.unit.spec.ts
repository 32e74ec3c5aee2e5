import { describe, it } from "vitest";
import { AlreadyExistsError, InvalidCommand, NotFoundError, RuleViolation } from "../errors.js";
import { scenario } from "../testing/given.js";
import { walletDecider } from "./decider.js";
import { maxBalanceCents, type WalletCommand, type WalletEvent, type WalletState } from "./types.js";

const { given } = scenario(walletDecider);

const walletId = "w-1";

// Events
const opened = (ownerId = "u-1"): WalletEvent => ({ type: "WalletOpened", ownerId });
const deposited = (amountCents: bigint): WalletEvent => ({ type: "FundsDeposited", amountCents });
const withdrawn = (amountCents: bigint): WalletEvent => ({ type: "FundsWithdrawn", amountCents });
const reserved = (reservationId: string, amountCents: bigint): WalletEvent => ({
  type: "FundsReserved",
  reservationId,
  amountCents,
});
const released = (reservationId: string, amountCents: bigint): WalletEvent => ({
  type: "ReservationReleased",
  reservationId,
  amountCents,
});
const settled = (reservationId: string, amountCents: bigint): WalletEvent => ({
  type: "ReservationSettled",
  reservationId,
  amountCents,
});

// Commands
const open = (ownerId = "u-1"): WalletCommand => ({ type: "OpenWallet", walletId, ownerId });
const deposit = (amountCents: bigint): WalletCommand => ({ type: "Deposit", walletId, amountCents });
const withdraw = (amountCents: bigint): WalletCommand => ({ type: "Withdraw", walletId, amountCents });
const reserve = (reservationId: string, amountCents: bigint): WalletCommand => ({
  type: "ReserveFunds",
  walletId,
  reservationId,
  amountCents,
});
const release = (reservationId: string): WalletCommand => ({ type: "ReleaseReservation", walletId, reservationId });
const settle = (reservationId: string): WalletCommand => ({ type: "SettleReservation", walletId, reservationId });

const openState = (
  balanceCents: bigint,
  reservedCents: bigint,
  reservations: Extract<WalletState, { status: "Open" }>["reservations"],
): WalletState => ({ status: "Open", ownerId: "u-1", balanceCents, reservedCents, reservations });

describe("OpenWallet", () => {
  it("opens a wallet for its owner", () => {
    given([]).when(open()).then([opened()]);
  });
  it("starts with nothing in it", () => {
    given([]).when(open()).thenState(openState(0n, 0n, {}));
  });
  it("refuses a wallet that is already open", () => {
    given([opened()]).when(open()).thenThrows(AlreadyExistsError, "wallet w-1 already exists");
  });
  it("refuses an empty owner id", () => {
    given([]).when(open("")).thenThrows(InvalidCommand, "wallet w-1 needs an owner id");
  });
  it("checks existence before the owner id", () => {
    given([opened()]).when(open("")).thenThrows(AlreadyExistsError);
  });
});

describe("every command but open", () => {
  it.each<[string, WalletCommand]>([
    ["Deposit", deposit(100n)],
    ["Withdraw", withdraw(100n)],
    ["ReserveFunds", reserve("r-1", 100n)],
    ["ReleaseReservation", release("r-1")],
    ["SettleReservation", settle("r-1")],
  ])("%s on a wallet never opened is NotFound", (_name, command) => {
    given([]).when(command).thenThrows(NotFoundError, "wallet w-1 does not exist");
  });
  it("checks existence before the amount", () => {
    given([]).when(deposit(0n)).thenThrows(NotFoundError);
  });
});

describe("Deposit", () => {
  it("deposits a positive amount", () => {
    given([opened()]).when(deposit(100n)).then([deposited(100n)]);
  });
  it("adds to the balance", () => {
    given([opened(), deposited(100n)]).when(deposit(50n)).thenState(openState(150n, 0n, {}));
  });
  it("refuses a zero amount", () => {
    given([opened()]).when(deposit(0n)).thenThrows(InvalidCommand, "deposit amount must be positive; got 0 cents");
  });
  it("refuses a negative amount", () => {
    given([opened()]).when(deposit(-5n)).thenThrows(InvalidCommand, "deposit amount must be positive; got -5 cents");
  });
  it("allows a deposit that reaches the maximum balance exactly", () => {
    given([opened(), deposited(maxBalanceCents - 10n)])
      .when(deposit(10n))
      .then([deposited(10n)]);
  });
  it("refuses a deposit that would take the balance above the maximum", () => {
    given([opened(), deposited(maxBalanceCents - 10n)])
      .when(deposit(11n))
      .thenThrows(
        RuleViolation,
        `deposit of 11 would take the balance of wallet w-1 to ${maxBalanceCents + 1n}, above the maximum ${maxBalanceCents}`,
      );
  });
  it("counts reserved funds towards the maximum: they are still in the wallet", () => {
    given([opened(), deposited(maxBalanceCents), reserved("r-1", maxBalanceCents)])
      .when(deposit(1n))
      .thenThrows(RuleViolation, "above the maximum");
  });
});

describe("Withdraw", () => {
  it("withdraws less than the balance", () => {
    given([opened(), deposited(100n)]).when(withdraw(40n)).then([withdrawn(40n)]);
  });
  it("withdraws the whole balance", () => {
    given([opened(), deposited(100n)]).when(withdraw(100n)).then([withdrawn(100n)]);
  });
  it("lowers the balance", () => {
    given([opened(), deposited(100n)]).when(withdraw(40n)).thenState(openState(60n, 0n, {}));
  });
  it("refuses to overdraw", () => {
    given([opened(), deposited(100n)])
      .when(withdraw(150n))
      .thenThrows(RuleViolation, "insufficient funds: available 100, requested 150");
  });
  it("refuses to withdraw from an empty wallet", () => {
    given([opened()]).when(withdraw(1n)).thenThrows(RuleViolation, "insufficient funds: available 0, requested 1");
  });
  it("draws only on the available funds, not on reserved ones", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n)])
      .when(withdraw(50n))
      .thenThrows(RuleViolation, "insufficient funds: available 40, requested 50");
  });
  it("withdraws all of the available funds beside a reservation", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n)]).when(withdraw(40n)).then([withdrawn(40n)]);
  });
  it("may withdraw funds again once their reservation is released", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n), released("r-1", 60n)])
      .when(withdraw(100n))
      .then([withdrawn(100n)]);
  });
  it("refuses a zero amount", () => {
    given([opened(), deposited(100n)])
      .when(withdraw(0n))
      .thenThrows(InvalidCommand, "withdrawal amount must be positive; got 0 cents");
  });
  it("refuses a negative amount", () => {
    given([opened(), deposited(100n)]).when(withdraw(-1n)).thenThrows(InvalidCommand, "must be positive");
  });
});

describe("ReserveFunds", () => {
  it("reserves available funds", () => {
    given([opened(), deposited(100n)]).when(reserve("r-1", 60n)).then([reserved("r-1", 60n)]);
  });
  it("holds the funds: reserved rises, the balance does not", () => {
    given([opened(), deposited(100n)])
      .when(reserve("r-1", 60n))
      .thenState(openState(100n, 60n, { "r-1": { amountCents: 60n, status: "Held" } }));
  });
  it("reserves all of the available funds", () => {
    given([opened(), deposited(100n)]).when(reserve("r-1", 100n)).then([reserved("r-1", 100n)]);
  });
  it("refuses more than the available funds", () => {
    given([opened(), deposited(100n)])
      .when(reserve("r-1", 101n))
      .thenThrows(RuleViolation, "insufficient funds: available 100, requested 101");
  });
  it("counts earlier reservations against the available funds", () => {
    given([opened(), deposited(100n), reserved("r-1", 70n)])
      .when(reserve("r-2", 40n))
      .thenThrows(RuleViolation, "insufficient funds: available 30, requested 40");
  });
  it("reserves beside an earlier reservation within the available funds", () => {
    given([opened(), deposited(100n), reserved("r-1", 70n)])
      .when(reserve("r-2", 30n))
      .then([reserved("r-2", 30n)]);
  });
  it("is a no-op for a held reservation with the same amount", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n)]).when(reserve("r-1", 60n)).thenNothing();
  });
  it("is a no-op for a repeat even when no funds remain available", () => {
    given([opened(), deposited(100n), reserved("r-1", 100n)]).when(reserve("r-1", 100n)).thenNothing();
  });
  it("refuses a held reservation id with another amount", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n)])
      .when(reserve("r-1", 50n))
      .thenThrows(RuleViolation, "reservation r-1 already holds 60; requested 50");
  });
  it("refuses a released reservation id", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n), released("r-1", 60n)])
      .when(reserve("r-1", 60n))
      .thenThrows(RuleViolation, "reservation r-1 was already released; a reservation id is used once");
  });
  it("refuses a settled reservation id", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n), settled("r-1", 60n)])
      .when(reserve("r-1", 10n))
      .thenThrows(RuleViolation, "reservation r-1 was already settled; a reservation id is used once");
  });
  it("refuses a zero amount", () => {
    given([opened(), deposited(100n)])
      .when(reserve("r-1", 0n))
      .thenThrows(InvalidCommand, "reservation amount must be positive; got 0 cents");
  });
  it("refuses a negative amount", () => {
    given([opened(), deposited(100n)]).when(reserve("r-1", -1n)).thenThrows(InvalidCommand, "must be positive");
  });
  it("refuses an empty reservation id", () => {
    given([opened(), deposited(100n)])
      .when(reserve("", 10n))
      .thenThrows(InvalidCommand, "reservation id must not be empty");
  });
  it("treats an id named like an Object.prototype member as new", () => {
    given([opened(), deposited(100n)]).when(reserve("toString", 10n)).then([reserved("toString", 10n)]);
  });
});

describe("ReleaseReservation", () => {
  it("releases a held reservation with its amount", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n)]).when(release("r-1")).then([released("r-1", 60n)]);
  });
  it("returns the funds to the available ones: reserved falls, the balance does not", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n), reserved("r-2", 10n)])
      .when(release("r-1"))
      .thenState(
        openState(100n, 10n, {
          "r-1": { amountCents: 60n, status: "Released" },
          "r-2": { amountCents: 10n, status: "Held" },
        }),
      );
  });
  it("refuses an unknown reservation", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n)])
      .when(release("r-9"))
      .thenThrows(RuleViolation, "no reservation r-9 in wallet w-1");
  });
  it("does not find an id named like an Object.prototype member", () => {
    given([opened()]).when(release("constructor")).thenThrows(RuleViolation, "no reservation constructor");
  });
  it("releases a reservation once", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n), released("r-1", 60n)])
      .when(release("r-1"))
      .thenThrows(RuleViolation, "reservation r-1 was already released; a reservation is closed once");
  });
  it("refuses to release a settled reservation", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n), settled("r-1", 60n)])
      .when(release("r-1"))
      .thenThrows(RuleViolation, "reservation r-1 was already settled; a reservation is closed once");
  });
  it("refuses an empty reservation id", () => {
    given([opened()]).when(release("")).thenThrows(InvalidCommand, "reservation id must not be empty");
  });
});

describe("SettleReservation", () => {
  it("settles a held reservation with its amount", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n)]).when(settle("r-1")).then([settled("r-1", 60n)]);
  });
  it("takes the money out of the wallet: reserved and balance both fall", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n), reserved("r-2", 10n)])
      .when(settle("r-1"))
      .thenState(
        openState(40n, 10n, {
          "r-1": { amountCents: 60n, status: "Settled" },
          "r-2": { amountCents: 10n, status: "Held" },
        }),
      );
  });
  it("leaves the other funds available", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n), settled("r-1", 60n)])
      .when(withdraw(41n))
      .thenThrows(RuleViolation, "insufficient funds: available 40, requested 41");
  });
  it("refuses an unknown reservation", () => {
    given([opened(), deposited(100n)])
      .when(settle("r-1"))
      .thenThrows(RuleViolation, "no reservation r-1 in wallet w-1");
  });
  it("settles a reservation once", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n), settled("r-1", 60n)])
      .when(settle("r-1"))
      .thenThrows(RuleViolation, "reservation r-1 was already settled; a reservation is closed once");
  });
  it("refuses to settle a released reservation", () => {
    given([opened(), deposited(100n), reserved("r-1", 60n), released("r-1", 60n)])
      .when(settle("r-1"))
      .thenThrows(RuleViolation, "reservation r-1 was already released; a reservation is closed once");
  });
  it("refuses an empty reservation id", () => {
    given([opened()]).when(settle("")).thenThrows(InvalidCommand, "reservation id must not be empty");
  });
});

describe("reservations held by a purchase", () => {
  const heldFor = (purchaseId: string, amountCents: bigint): WalletEvent => ({
    type: "FundsReserved",
    reservationId: purchaseId,
    amountCents,
    purchaseId,
  });

  it("records the purchase holding the reservation", () => {
    given([opened(), deposited(100n)])
      .when({ type: "ReserveFunds", walletId, reservationId: "p-1", amountCents: 60n, purchaseId: "p-1" })
      .then([heldFor("p-1", 60n)]);
  });

  it("is taken again by the same purchase as a no-op, never over a reservation made otherwise", () => {
    const byPurchase: WalletCommand = { type: "ReserveFunds", walletId, reservationId: "p-1", amountCents: 60n, purchaseId: "p-1" };
    given([opened(), deposited(100n), heldFor("p-1", 60n)]).when(byPurchase).thenNothing();
    given([opened(), deposited(100n), reserved("p-1", 60n)])
      .when(byPurchase)
      .thenThrows(RuleViolation, "reservation p-1 already exists, held not by a purchase");
    given([opened(), deposited(100n), heldFor("p-1", 60n)])
      .when(reserve("p-1", 60n))
      .thenThrows(RuleViolation, "reservation p-1 already exists, held by purchase p-1");
  });

  it("lets only that purchase release or settle it", () => {
    const history = [opened(), deposited(100n), heldFor("p-1", 60n)];
    given(history).when(release("p-1")).thenThrows(RuleViolation, "reservation p-1 is held by purchase p-1; only the purchase closes it");
    given(history).when(settle("p-1")).thenThrows(RuleViolation, "held by purchase p-1");
    given(history)
      .when({ type: "SettleReservation", walletId, reservationId: "p-1", purchaseId: "p-2" })
      .thenThrows(RuleViolation, "held by purchase p-1");
    given(history)
      .when({ type: "SettleReservation", walletId, reservationId: "p-1", purchaseId: "p-1" })
      .then([settled("p-1", 60n)]);
    given(history)
      .when({ type: "ReleaseReservation", walletId, reservationId: "p-1", purchaseId: "p-1" })
      .then([released("p-1", 60n)]);
  });
});

describe("ReceivePayment", () => {
  const pay = (amountCents: bigint): WalletCommand => ({
    type: "ReceivePayment",
    walletId,
    purchaseId: "p-1",
    artworkId: "a-1",
    amountCents,
    kind: "Royalty",
  });
  const paid = (amountCents: bigint): WalletEvent => ({
    type: "PaymentReceived",
    purchaseId: "p-1",
    artworkId: "a-1",
    amountCents,
    kind: "Royalty",
  });

  it("credits an open wallet", () => {
    given([opened(), deposited(5n)]).when(pay(7n)).then([paid(7n)]);
    given([opened(), deposited(5n)]).when(pay(7n)).thenState(openState(12n, 0n, {}));
  });

  it("opens the wallet of the party whose id it has when there is none", () => {
    given([]).when(pay(7n)).then([opened(walletId), paid(7n)]);
  });

  it("refuses a non-positive amount and a balance beyond the maximum", () => {
    given([opened()]).when(pay(0n)).thenThrows(InvalidCommand, "payment amount must be positive");
    given([opened(), deposited(maxBalanceCents)]).when(pay(1n)).thenThrows(RuleViolation, "above the maximum");
  });
});

describe("payments a purchase expects to make", () => {
  const max = maxBalanceCents;
  const expectPayment = (amountCents: bigint, purchaseId = "p-1"): WalletCommand => ({ type: "ExpectPayment", walletId, purchaseId, amountCents });
  const cancel = (purchaseId = "p-1"): WalletCommand => ({ type: "CancelExpectedPayment", walletId, purchaseId });
  const pay = (amountCents: bigint, purchaseId = "p-1"): WalletCommand => ({
    type: "ReceivePayment",
    walletId,
    purchaseId,
    artworkId: "a-1",
    amountCents,
    kind: "SaleProceeds",
  });
  const expected = (amountCents: bigint, purchaseId = "p-1"): WalletEvent => ({ type: "PaymentExpected", purchaseId, amountCents });
  const cancelled = (amountCents: bigint, purchaseId = "p-1"): WalletEvent => ({
    type: "ExpectedPaymentCancelled",
    purchaseId,
    amountCents,
  });
  const paid = (amountCents: bigint, purchaseId = "p-1"): WalletEvent => ({
    type: "PaymentReceived",
    purchaseId,
    artworkId: "a-1",
    amountCents,
    kind: "SaleProceeds",
  });
  const withExpected = (
    balanceCents: bigint,
    expectedCents: bigint,
    expectedPayments: NonNullable<Extract<WalletState, { status: "Open" }>["expectedPayments"]>,
  ): WalletState => ({ ...openState(balanceCents, 0n, {}), expectedCents, expectedPayments } as WalletState);

  describe("ExpectPayment", () => {
    it("makes room for a payment that fits under the ceiling", () => {
      given([opened(), deposited(max - 100n)]).when(expectPayment(100n)).then([expected(100n)]);
      given([opened(), deposited(5n)])
        .when(expectPayment(100n))
        .thenState(withExpected(5n, 100n, { "p-1": { amountCents: 100n, receivedCents: 0n, status: "Expected" } }));
    });

    it("refuses a payment the balance has no room for, saying by how much", () => {
      given([opened(), deposited(max - 10n)])
        .when(expectPayment(100n))
        .thenThrows(
          RuleViolation,
          `payment of 100 for purchase p-1 would take the balance of wallet w-1 to ${max + 90n}, above the maximum ${max}`,
        );
    });

    it("counts the room other purchases made", () => {
      given([opened(), deposited(max - 150n), expected(100n, "p-0")])
        .when(expectPayment(100n))
        .thenThrows(RuleViolation, `to ${max - 50n} with 100 more expected from purchases, above the maximum`);
      given([opened(), deposited(max - 200n), expected(100n, "p-0")]).when(expectPayment(100n)).then([expected(100n)]);
    });

    it("opens the wallet of the party whose id it has when there is none", () => {
      given([]).when(expectPayment(100n)).then([opened(walletId), expected(100n)]);
    });

    it("is a no-op when repeated with the same amount, and refused once closed", () => {
      given([opened(), expected(100n)]).when(expectPayment(100n)).thenNothing();
      given([opened(), expected(100n), cancelled(100n)])
        .when(expectPayment(100n))
        .thenThrows(RuleViolation, "the payment wallet w-1 expected from purchase p-1 was cancelled; a purchase makes room once");
      given([opened(), expected(100n), paid(100n)]).when(expectPayment(100n)).thenThrows(RuleViolation, "was received");
    });

    it("resizes the room with another amount, before any of it was received", () => {
      given([opened(), deposited(max - 200n), expected(100n)]).when(expectPayment(200n)).then([expected(200n)]);
      given([opened(), deposited(max - 200n), expected(100n)])
        .when(expectPayment(30n))
        .thenState(withExpected(max - 200n, 30n, { "p-1": { amountCents: 30n, receivedCents: 0n, status: "Expected" } }));
      given([opened(), deposited(max - 200n), expected(100n)])
        .when(expectPayment(201n))
        .thenThrows(RuleViolation, `payment of 201 for purchase p-1 would take the balance of wallet w-1 to ${max + 1n}, above`);
      given([opened(), expected(100n), paid(40n)])
        .when(expectPayment(90n))
        .thenThrows(RuleViolation, "wallet w-1 has received 40 of the 100 expected from purchase p-1; requested 90");
    });

    it("refuses an empty purchase id and a non-positive amount", () => {
      given([opened()]).when(expectPayment(100n, "")).thenThrows(InvalidCommand, "an expected payment needs a purchase id");
      given([opened()]).when(expectPayment(0n)).thenThrows(InvalidCommand, "expected payment amount must be positive");
    });
  });

  describe("the room made", () => {
    it("is kept from deposits", () => {
      given([opened(), deposited(max - 150n), expected(100n)])
        .when(deposit(51n))
        .thenThrows(
          RuleViolation,
          `deposit of 51 would take the balance of wallet w-1 to ${max - 99n} with 100 more expected from purchases, above the maximum ${max}`,
        );
      given([opened(), deposited(max - 150n), expected(100n)]).when(deposit(50n)).then([deposited(50n)]);
    });

    it("takes the payment it was made for, whatever else arrived meanwhile", () => {
      given([opened(), deposited(max - 150n), expected(100n), deposited(50n)]).when(pay(100n)).then([paid(100n)]);
      given([opened(), deposited(max - 150n), expected(100n), deposited(50n)])
        .when(pay(100n))
        .thenState(withExpected(max, 0n, { "p-1": { amountCents: 100n, receivedCents: 100n, status: "Received" } }));
    });

    it("is filled by each payment of its purchase in turn, and by no other purchase's", () => {
      given([opened(), expected(150n), paid(50n)])
        .when(pay(100n))
        .thenState(withExpected(150n, 0n, { "p-1": { amountCents: 150n, receivedCents: 150n, status: "Received" } }));
      given([opened(), deposited(max - 150n), expected(100n)])
        .when(pay(51n, "p-2"))
        .thenThrows(RuleViolation, "with 100 more expected from purchases, above the maximum");
    });

    it("lets a payment beyond it through only as far as the ceiling has room for the rest", () => {
      given([opened(), deposited(max - 100n), expected(100n)]).when(pay(101n)).thenThrows(RuleViolation, "above the maximum");
    });
  });

  describe("CancelExpectedPayment", () => {
    it("gives the room back with the amount still expected", () => {
      given([opened(), expected(150n), paid(50n)]).when(cancel()).then([cancelled(100n)]);
      given([opened(), deposited(max - 100n), expected(100n), cancelled(100n)]).when(deposit(100n)).then([deposited(100n)]);
    });

    it("cancels nothing when no room was made, none is left, or the wallet was never opened", () => {
      given([opened()]).when(cancel()).thenNothing();
      given([opened(), expected(100n), cancelled(100n)]).when(cancel()).thenNothing();
      given([opened(), expected(100n), paid(100n)]).when(cancel()).thenNothing();
      given([]).when(cancel()).thenNothing();
    });
  });
});
