// End to end: the generated clients against a real HTTP/2 server on loopback, in the Connect and the gRPC
// protocol, with the app on a nats-server of this file's own. Every accepted command is then looked up in the
// stream: one commit on the aggregate's subject, holding exactly the command's events and its metadata.
import { randomUUID } from "node:crypto";
import { createRegistry, equals, fromBinary, type Message, type MessageInitShape } from "@bufbuild/protobuf";
import { createAsyncIterable } from "@connectrpc/connect/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import type { CommandResult } from "../gen/foldline/marketplace/v1/command_pb.js";
import type { ExecuteRequestSchema, ExecuteResponse } from "../gen/foldline/marketplace/v1/command_service_pb.js";
import {
  file_foldline_marketplace_v1_events,
  FundsDepositedSchema,
  FundsReservedSchema,
  FundsWithdrawnSchema,
  PaymentReceivedSchema,
  ReservationReleasedSchema,
  ReservationSettledSchema,
  WalletOpenedSchema,
} from "../gen/foldline/marketplace/v1/events_pb.js";
import type { StoredCommit } from "../streams/event-store.js";
import { clients, startTestApp, type Clients } from "./harness/app.js";
import { startTestNats, type TestNats } from "./harness/nats.js";

let nats: TestNats;
let app: App;

beforeAll(async () => {
  nats = await startTestNats();
  app = await startTestApp(nats);
});
afterAll(async () => {
  // nats-server is stopped even when foldline never started (setup failed) or fails to close.
  try {
    await app.close();
  } finally {
    await nats.stop();
  }
});

/** Every persisted event message, by full name: a stored payload is decoded with the schema its type names. */
const eventRegistry = createRegistry(file_foldline_marketplace_v1_events);
const eventPackage = "foldline.marketplace.v1";

/** The metadata a test sends, and expects to find in the command's commit. */
interface SentMetadata {
  readonly commandId: string;
  readonly actor: string;
  readonly correlationId: string;
  readonly causationId: string;
}

function metadata(actor: string, correlationId: string): SentMetadata {
  return { commandId: randomUUID(), actor, correlationId, causationId: `cause-${randomUUID()}` };
}

/** What every command RPC answers: the result and the command's events, each a oneof of persisted messages. */
interface CommandResponse {
  readonly result?: CommandResult | undefined;
  readonly events: readonly { readonly event: { readonly case: string | undefined; readonly value?: Message | undefined } }[];
}

/** One aggregate under test: its id, its subject and the version its last accepted command must have answered. */
interface Tracked {
  readonly subject: string;
  readonly id: string;
  version: number;
}

/**
 * Checks an accepted command's answer and its commit. `expected` lists the events as [oneof case, message name];
 * the aggregate's version must be one more than before, the position beyond every position seen before.
 */
async function expectCommitted(
  response: CommandResponse,
  sent: SentMetadata,
  aggregate: Tracked,
  positions: { last: bigint },
  expected: readonly (readonly [string, string])[],
): Promise<StoredCommit> {
  aggregate.version++;
  const { result } = response;
  expect(result?.aggregateId).toBe(aggregate.id);
  expect(result?.version).toBe(BigInt(aggregate.version));
  const position = result?.position ?? 0n;
  expect(position).toBeGreaterThan(positions.last);
  positions.last = position;
  expect(response.events.map((e) => e.event.case)).toEqual(expected.map(([kind]) => kind));

  const commit = await app.streams.store.readCommit(Number(position));
  if (commit === undefined) throw new Error(`no commit at position ${position}`);
  expect(commit.seq).toBe(Number(position));
  expect(commit.subject).toBe(aggregate.subject);
  expect(commit.events.map((e) => e.type)).toEqual(expected.map(([, name]) => `${eventPackage}.${name}`));
  expect(commit.metadata).toMatchObject({ ...sent, aggregateVersion: aggregate.version });
  expect(Math.abs(commit.metadata.recordedAt.getTime() - Date.now())).toBeLessThan(10_000);
  // The stored payloads are the very messages the response carried.
  commit.events.forEach((stored, i) => {
    expect(stored.schemaVersion).toBe(1);
    const schema = eventRegistry.getMessage(stored.type);
    const answered = response.events[i]?.event.value;
    if (schema === undefined || answered === undefined) throw new Error(`event ${i} of ${stored.type} cannot be compared`);
    expect(equals(schema, fromBinary(schema, stored.payload), answered)).toBe(true);
  });
  return commit;
}

/** A wallet's figures, folded from every commit on its subject. */
async function walletFromStream(walletId: string): Promise<{ balance: bigint; reserved: bigint; commits: StoredCommit[] }> {
  const commits = await app.streams.store.readAggregate(`ev.wallet.${walletId}`);
  let balance = 0n;
  const held = new Map<string, bigint>();
  for (const commit of commits) {
    for (const { type, payload } of commit.events) {
      switch (type) {
        case WalletOpenedSchema.typeName:
          break;
        case FundsDepositedSchema.typeName:
          balance += fromBinary(FundsDepositedSchema, payload).amountCents;
          break;
        case FundsWithdrawnSchema.typeName:
          balance -= fromBinary(FundsWithdrawnSchema, payload).amountCents;
          break;
        case FundsReservedSchema.typeName: {
          const m = fromBinary(FundsReservedSchema, payload);
          held.set(m.reservationId, m.amountCents);
          break;
        }
        case ReservationReleasedSchema.typeName:
          held.delete(fromBinary(ReservationReleasedSchema, payload).reservationId);
          break;
        case ReservationSettledSchema.typeName: {
          const m = fromBinary(ReservationSettledSchema, payload);
          balance -= m.amountCents;
          held.delete(m.reservationId);
          break;
        }
        default:
          throw new Error(`unexpected event ${type} on wallet ${walletId}`);
      }
    }
  }
  return { balance, reserved: [...held.values()].reduce((a, b) => a + b, 0n), commits };
}

describe.each(["connect", "grpc"] as const)("commands over %s", (protocol) => {
  let c: Clients;
  // Positions only grow within one protocol's tests, which run one after another.
  const positions = { last: 0n };
  const run = randomUUID().slice(0, 8);

  beforeAll(() => {
    c = clients(app.url, protocol);
  });

  it("mints, splits, lists, transfers, relists, delists and burns an artwork, one commit each", async () => {
    const artist = `artist-${run}`;
    const buyer = `buyer-${run}`;
    const artworkId = `art-${protocol}-${randomUUID()}`;
    const artwork: Tracked = { id: artworkId, subject: `ev.artwork.${artworkId}`, version: 0 };
    const correlationId = `sale-${randomUUID()}`;

    let sent = metadata(artist, correlationId);
    const minted = await c.artwork.mintArtwork({
      metadata: sent,
      artworkId,
      artistId: artist,
      title: "Foldline No. 1",
      contentHash: "sha256:00ff",
      royaltySplit: [{ recipientId: artist, basisPoints: 500 }],
    });
    await expectCommitted(minted, sent, artwork, positions, [["minted", "ArtworkMinted"]]);
    expect(minted.events[0]?.event.value).toMatchObject({
      artistId: artist,
      title: "Foldline No. 1",
      contentHash: "sha256:00ff",
      royaltySplit: [{ recipientId: artist, basisPoints: 500 }],
    });

    sent = metadata(artist, correlationId);
    const split = [
      { recipientId: artist, basisPoints: 700 },
      { recipientId: `gallery-${run}`, basisPoints: 300 },
    ];
    const splitChanged = await c.artwork.setRoyaltySplit({ metadata: sent, artworkId, royaltySplit: split });
    await expectCommitted(splitChanged, sent, artwork, positions, [["royaltySplitChanged", "RoyaltySplitChanged"]]);
    expect(splitChanged.events[0]?.event.value).toMatchObject({ royaltySplit: split });

    sent = metadata(artist, correlationId);
    const listed = await c.artwork.listForSale({ metadata: sent, artworkId, priceCents: 50_000n, payoutWalletId: `w-${artist}` });
    await expectCommitted(listed, sent, artwork, positions, [["listed", "ArtworkListed"]]);
    expect(listed.events[0]?.event.value).toMatchObject({ priceCents: 50_000n, payoutWalletId: `w-${artist}` });

    sent = metadata(artist, correlationId);
    const transferred = await c.artwork.transferOwnership({ metadata: sent, artworkId, newOwnerId: buyer });
    const transferCommit = await expectCommitted(transferred, sent, artwork, positions, [
      ["ownershipTransferred", "OwnershipTransferred"],
    ]);
    expect(transferred.events[0]?.event.value).toMatchObject({ fromOwnerId: artist, toOwnerId: buyer });

    // The transfer ended the listing: delisting now changes nothing, so it answers the current version and
    // position and appends nothing.
    const headBefore = await app.streams.store.head();
    const noop = await c.artwork.delist({ metadata: metadata(buyer, correlationId), artworkId });
    expect(noop.events).toEqual([]);
    expect(noop.result?.version).toBe(BigInt(artwork.version));
    expect(noop.result?.position).toBe(BigInt(transferCommit.seq));
    expect(await app.streams.store.head()).toBe(headBefore);

    // The same price as the ended listing is a new listing, not a no-op.
    sent = metadata(buyer, correlationId);
    const relisted = await c.artwork.listForSale({ metadata: sent, artworkId, priceCents: 50_000n, payoutWalletId: `w-${buyer}` });
    await expectCommitted(relisted, sent, artwork, positions, [["listed", "ArtworkListed"]]);

    sent = metadata(buyer, correlationId);
    const delisted = await c.artwork.delist({ metadata: sent, artworkId });
    await expectCommitted(delisted, sent, artwork, positions, [["delisted", "ArtworkDelisted"]]);

    sent = metadata(buyer, correlationId);
    const burned = await c.artwork.burnArtwork({ metadata: sent, artworkId });
    await expectCommitted(burned, sent, artwork, positions, [["burned", "ArtworkBurned"]]);

    // Seven commits on the subject, versions 1..7, in the order sent.
    const commits = await app.streams.store.readAggregate(artwork.subject);
    expect(commits.map((cm) => cm.metadata.aggregateVersion)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(commits.map((cm) => cm.events[0]?.type.slice(eventPackage.length + 1))).toEqual([
      "ArtworkMinted",
      "RoyaltySplitChanged",
      "ArtworkListed",
      "OwnershipTransferred",
      "ArtworkListed",
      "ArtworkDelisted",
      "ArtworkBurned",
    ]);
  });

  it("buys an artwork in one atomic batch: the artwork, the buyer's wallet, each payee's wallet, then the purchase", async () => {
    const id = (what: string): string => `${what}-${protocol}-${randomUUID().slice(0, 8)}`;
    const [artworkId, purchaseId, buyerWallet, galleryWallet, artistWallet] = ["art", "purchase", "wb", "wg", "wa"].map(id) as [
      string,
      string,
      string,
      string,
      string,
    ];
    const artist = `artist-${run}`;
    const buyer = `buyer-${run}`;
    const setup = (actor: string): SentMetadata => metadata(actor, "");
    for (const [walletId, ownerId] of [[buyerWallet, buyer], [galleryWallet, "gallery"], [artistWallet, artist]] as const) {
      await c.wallet.openWallet({ metadata: setup(ownerId), walletId, ownerId });
    }
    await c.wallet.deposit({ metadata: setup(buyer), walletId: buyerWallet, amountCents: 10_000n });
    await c.artwork.mintArtwork({
      metadata: setup(artist),
      artworkId,
      artistId: artist,
      title: "t",
      contentHash: "h",
      royaltySplit: [{ recipientId: galleryWallet, basisPoints: 1_000 }],
    });
    const listed = await c.artwork.listForSale({ metadata: setup(artist), artworkId, priceCents: 2_500n, payoutWalletId: artistWallet });
    positions.last = listed.result?.position ?? 0n;

    const purchase: Tracked = { id: purchaseId, subject: `ev.purchase.${purchaseId}`, version: 0 };
    const sent = metadata(buyer, `purchase-${randomUUID()}`);
    const bought = await c.purchases.buyArtwork({ metadata: sent, purchaseId, artworkId, buyerId: buyer, buyerWalletId: buyerWallet, priceCents: 2_500n });
    const last = await expectCommitted(bought, sent, purchase, positions, [
      ["started", "PurchaseStarted"],
      ["artworkTaken", "PurchaseArtworkTaken"],
      ["completed", "PurchaseCompleted"],
    ]);
    expect(bought.events[1]?.event.value).toMatchObject({
      sellerId: artist,
      payouts: [
        { recipientId: galleryWallet, amountCents: 250n },
        { recipientId: artistWallet, amountCents: 2_250n },
      ],
    });
    // The record, then one commit per aggregate, consecutive: the batch is whole.
    const record = await app.streams.store.readRecord(sent.commandId);
    expect(record?.seq).toBe(last.seq - 5);
    const batch = await Promise.all([4, 3, 2, 1].map((back) => app.streams.store.readCommit(last.seq - back)));
    expect(batch.map((commit) => commit?.subject)).toEqual([
      `ev.artwork.${artworkId}`,
      `ev.wallet.${buyerWallet}`,
      `ev.wallet.${galleryWallet}`,
      `ev.wallet.${artistWallet}`,
    ]);
    for (const commit of batch) expect(commit?.metadata).toMatchObject(sent);
    expect((await walletFromStream(buyerWallet)).balance).toBe(7_500n);
    const paid = async (walletId: string): Promise<bigint> =>
      (await app.streams.store.readAggregate(`ev.wallet.${walletId}`))
        .flatMap((commit) => commit.events)
        .filter((e) => e.type === PaymentReceivedSchema.typeName)
        .reduce((sum, e) => sum + fromBinary(PaymentReceivedSchema, e.payload).amountCents, 0n);
    expect([await paid(galleryWallet), await paid(artistWallet)]).toEqual([250n, 2_250n]);
  });

  it("opens a wallet, deposits, withdraws, reserves, releases and settles, one commit each", async () => {
    const owner = `owner-${run}`;
    const walletId = `wallet-${protocol}-${randomUUID()}`;
    const wallet: Tracked = { id: walletId, subject: `ev.wallet.${walletId}`, version: 0 };
    const correlationId = `funding-${randomUUID()}`;
    const sentIds: string[] = [];
    const send = (): SentMetadata => {
      const sent = metadata(owner, correlationId);
      sentIds.push(sent.commandId);
      return sent;
    };

    let sent = send();
    const opened = await c.wallet.openWallet({ metadata: sent, walletId, ownerId: owner });
    await expectCommitted(opened, sent, wallet, positions, [["opened", "WalletOpened"]]);
    expect(opened.events[0]?.event.value).toMatchObject({ ownerId: owner });

    const deposit = { metadata: send(), walletId, amountCents: 1000n };
    const deposited = await c.wallet.deposit(deposit);
    await expectCommitted(deposited, deposit.metadata, wallet, positions, [["deposited", "FundsDeposited"]]);
    expect(deposited.events[0]?.event.value).toMatchObject({ amountCents: 1000n });

    sent = send();
    const withdrawn = await c.wallet.withdraw({ metadata: sent, walletId, amountCents: 300n });
    await expectCommitted(withdrawn, sent, wallet, positions, [["withdrawn", "FundsWithdrawn"]]);
    expect(withdrawn.events[0]?.event.value).toMatchObject({ amountCents: 300n });

    sent = send();
    const reserved = await c.wallet.reserveFunds({ metadata: sent, walletId, reservationId: "r-1", amountCents: 200n });
    await expectCommitted(reserved, sent, wallet, positions, [["reserved", "FundsReserved"]]);
    expect(reserved.events[0]?.event.value).toMatchObject({ reservationId: "r-1", amountCents: 200n });

    sent = send();
    const released = await c.wallet.releaseReservation({ metadata: sent, walletId, reservationId: "r-1" });
    await expectCommitted(released, sent, wallet, positions, [["reservationReleased", "ReservationReleased"]]);
    expect(released.events[0]?.event.value).toMatchObject({ reservationId: "r-1", amountCents: 200n });

    sent = send();
    const reserved2 = await c.wallet.reserveFunds({ metadata: sent, walletId, reservationId: "r-2", amountCents: 100n });
    await expectCommitted(reserved2, sent, wallet, positions, [["reserved", "FundsReserved"]]);

    sent = send();
    const settled = await c.wallet.settleReservation({ metadata: sent, walletId, reservationId: "r-2" });
    await expectCommitted(settled, sent, wallet, positions, [["reservationSettled", "ReservationSettled"]]);
    expect(settled.events[0]?.event.value).toMatchObject({ reservationId: "r-2", amountCents: 100n });

    // A repeat of an accepted command answers as the first time did and appends nothing.
    const headBefore = await app.streams.store.head();
    const repeat = await c.wallet.deposit(deposit);
    expect(repeat.result).toEqual(deposited.result);
    expect(await app.streams.store.head()).toBe(headBefore);

    // 1000 deposited, 300 withdrawn, 200 reserved and released, 100 reserved and settled.
    const folded = await walletFromStream(walletId);
    expect(folded.balance).toBe(600n);
    expect(folded.reserved).toBe(0n);
    expect(folded.commits.map((cm) => cm.metadata.commandId)).toEqual(sentIds);
    expect(folded.commits.map((cm) => cm.metadata.aggregateVersion)).toEqual([1, 2, 3, 4, 5, 6, 7]);

    // The server's own state agrees: 600 are available, not a cent more.
    await expect(c.wallet.withdraw({ metadata: metadata(owner, correlationId), walletId, amountCents: 601n })).rejects.toThrow(
      /insufficient funds: available 600, requested 601/,
    );
  });

  it("answers 50 mixed commands on one Execute stream in order, the invalid one with its error", async () => {
    const owner = `owner-${run}`;
    const wallets = Array.from({ length: 3 }, (_, i) => `stream-${protocol}-${i}-${randomUUID()}`);
    const invalidAt = 25;
    type Request = MessageInitShape<typeof ExecuteRequestSchema>;
    interface Expectation {
      readonly walletId: string;
      readonly kind: "openWallet" | "deposit" | "withdraw";
      readonly amount: bigint;
    }
    const requests: Request[] = [];
    const expectations: Expectation[] = [];
    const balances = new Map<string, bigint>(wallets.map((w) => [w, 0n]));
    for (let i = 0; i < 50; i++) {
      const walletId = wallets[i % wallets.length] ?? "";
      const meta = metadata(owner, `stream-${run}`);
      if (i < wallets.length) {
        requests.push({ command: { case: "openWallet", value: { metadata: meta, walletId, ownerId: owner } } });
        expectations.push({ walletId, kind: "openWallet", amount: 0n });
      } else if (i === invalidAt) {
        requests.push({ command: { case: "deposit", value: { metadata: meta, walletId, amountCents: 0n } } });
        expectations.push({ walletId, kind: "deposit", amount: 0n });
      } else if (i % 7 === 0) {
        // Every wallet has had a deposit by now; a withdrawal of a few cents always succeeds.
        const amount = BigInt(i % 5) + 1n;
        requests.push({ command: { case: "withdraw", value: { metadata: meta, walletId, amountCents: amount } } });
        expectations.push({ walletId, kind: "withdraw", amount });
        balances.set(walletId, (balances.get(walletId) ?? 0n) - amount);
      } else {
        const amount = 100n + BigInt(i); // distinct, so an answer out of order shows
        requests.push({ command: { case: "deposit", value: { metadata: meta, walletId, amountCents: amount } } });
        expectations.push({ walletId, kind: "deposit", amount });
        balances.set(walletId, (balances.get(walletId) ?? 0n) + amount);
      }
    }

    const answers: ExecuteResponse[] = [];
    for await (const answer of c.commands.execute(createAsyncIterable(requests))) answers.push(answer);

    expect(answers).toHaveLength(50);
    const versions = new Map<string, number>();
    answers.forEach((answer, i) => {
      const expected = expectations[i];
      if (expected === undefined) throw new Error(`no expectation for answer ${i}`);
      const { outcome } = answer;
      if (i === invalidAt) {
        expect(outcome.case).toBe("error");
        if (outcome.case !== "error") return;
        expect(outcome.value.code).toBe("invalid_argument");
        expect(outcome.value.message).toMatch(/amount_cents must be greater than 0, got 0/);
        return;
      }
      expect(outcome.case, `answer ${i}`).toBe(expected.kind);
      if (outcome.case !== "openWallet" && outcome.case !== "deposit" && outcome.case !== "withdraw") return;
      const version = (versions.get(expected.walletId) ?? 0) + 1;
      versions.set(expected.walletId, version);
      expect(outcome.value.result?.aggregateId, `answer ${i}`).toBe(expected.walletId);
      expect(outcome.value.result?.version, `answer ${i}`).toBe(BigInt(version));
      if (expected.kind !== "openWallet") {
        expect(outcome.value.events[0]?.event.value, `answer ${i}`).toMatchObject({ amountCents: expected.amount });
      }
    });

    // 49 accepted commands, each one commit with consecutive versions per wallet, and the sums agree.
    let commits = 0;
    for (const walletId of wallets) {
      const folded = await walletFromStream(walletId);
      commits += folded.commits.length;
      expect(folded.commits.map((cm) => cm.metadata.aggregateVersion)).toEqual(
        Array.from({ length: versions.get(walletId) ?? 0 }, (_, i) => i + 1),
      );
      expect(folded.balance).toBe(balances.get(walletId));
    }
    expect(commits).toBe(49);
  });
});
