// Bad requests over the wire: every error code the command API answers, each produced by sending the offending
// request through the generated client, with the message saying what was wrong. A refused command appends
// nothing, and the server stays up and consistent afterwards.
//
// UNAVAILABLE is not produced here: it needs NATS to stop answering, which the outage specs cover.
import { randomUUID } from "node:crypto";
import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createAsyncIterable } from "@connectrpc/connect/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import type { CommandMetadataSchema } from "../gen/foldline/marketplace/v1/command_pb.js";
import type { ExecuteRequestSchema, ExecuteResponse } from "../gen/foldline/marketplace/v1/command_service_pb.js";
import {
  FundsDepositedSchema,
  FundsReservedSchema,
  FundsWithdrawnSchema,
  ReservationReleasedSchema,
  ReservationSettledSchema,
  WalletOpenedSchema,
} from "../gen/foldline/marketplace/v1/events_pb.js";
import { HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { clients, startTestApp, type Clients, type Protocol } from "./harness/app.js";
import { startTestNats, type TestNats } from "./harness/nats.js";
import { commitsBetween } from "./harness/commits.js";

type MetadataInit = MessageInitShape<typeof CommandMetadataSchema>;

let nats: TestNats;
let app: App;
const byProtocol = new Map<Protocol, Clients>();
const client = (protocol: Protocol): Clients => {
  const c = byProtocol.get(protocol);
  if (c === undefined) throw new Error(`no ${protocol} clients`);
  return c;
};

// Fixtures, created in beforeAll through the API (see there for their history).
const run = randomUUID().slice(0, 8);
/** Open; balance 870, of which 200 held under r-held; r-rel released, r-set settled; version 8. */
const wallet = `w-${run}`;
const walletVersion = 8;
const walletBalance = 870n;
const walletAvailable = 670n;
/** Minted by ann with a 10 % split, listed at 500 by ann. */
const artwork = `a-${run}`;
/** A purchase made in beforeAll: carol bought `sold` (ann's, 500, 10 % to wallet ann) from her wallet `buyerWallet`. */
const purchase = `p-${run}`;
const sold = `s-${run}`;
/** Carol's wallet: 600 deposited, 500 paid for `sold`: 100 left. */
const buyerWallet = `wc-${run}`;
/** Ann's, listed at 5 with its proceeds to a wallet nobody opened. */
const unpaid = `u-${run}`;
const buy = (over: Partial<{ purchaseId: string; artworkId: string; buyerId: string; buyerWalletId: string; priceCents: bigint }> = {}) => ({
  metadata: md(),
  purchaseId: `p-${randomUUID()}`,
  artworkId: artwork,
  buyerId: "alice",
  buyerWalletId: wallet,
  priceCents: 500n,
  ...over,
});
/** Minted by bob, then burned. */
const burned = `b-${run}`;
const neverOpened = `w0-${run}`;
const neverMinted = `a0-${run}`;
/** The command id of the fixture's deposit of 1000, and that request itself. */
const depositCommandId = randomUUID();
const depositRequest = {
  metadata: { commandId: depositCommandId, actor: "alice", correlationId: "fixture", causationId: "fixture" },
  walletId: wallet,
  amountCents: 1000n,
};

/** Metadata with a fresh command id; `over` replaces any field. */
const md = (over: MetadataInit = {}): MetadataInit => ({
  commandId: randomUUID(),
  actor: "alice",
  correlationId: `bad-${run}`,
  causationId: "bad-requests-spec",
  ...over,
});
const long = (n: number): string => "x".repeat(n);
const shares = (n: number, bps = 10) => Array.from({ length: n }, (_, i) => ({ recipientId: `r${i}`, basisPoints: bps }));
const mint = (over: { artworkId?: string; artistId?: string; title?: string; contentHash?: string } = {}) => ({
  metadata: md({ actor: "ann" }),
  artworkId: `m-${randomUUID()}`,
  artistId: "ann",
  title: "Untitled",
  contentHash: "sha256:abcd",
  ...over,
});

beforeAll(async () => {
  nats = await startTestNats();
  app = await startTestApp(nats);
  byProtocol.set("grpc", clients(app.url, "grpc"));
  byProtocol.set("connect", clients(app.url, "connect"));
  const { wallet: w, artwork: a } = client("grpc");

  await w.openWallet({ metadata: md(), walletId: wallet, ownerId: "alice" }); // v1
  await w.deposit(depositRequest); // v2: 1000
  await w.withdraw({ metadata: md(), walletId: wallet, amountCents: 100n }); // v3: 900
  await w.reserveFunds({ metadata: md(), walletId: wallet, reservationId: "r-held", amountCents: 200n }); // v4
  await w.reserveFunds({ metadata: md(), walletId: wallet, reservationId: "r-rel", amountCents: 50n }); // v5
  await w.releaseReservation({ metadata: md(), walletId: wallet, reservationId: "r-rel" }); // v6
  await w.reserveFunds({ metadata: md(), walletId: wallet, reservationId: "r-set", amountCents: 30n }); // v7
  await w.settleReservation({ metadata: md(), walletId: wallet, reservationId: "r-set" }); // v8: 870, 200 held

  await a.mintArtwork({ ...mint({ artworkId: artwork }), royaltySplit: [{ recipientId: "ann", basisPoints: 1000 }] });
  await a.listForSale({ metadata: md({ actor: "ann" }), artworkId: artwork, priceCents: 500n, payoutWalletId: "ann" });
  await w.openWallet({ metadata: md({ actor: "ann" }), walletId: "ann", ownerId: "ann" });
  await w.openWallet({ metadata: md({ actor: "carol" }), walletId: buyerWallet, ownerId: "carol" });
  await w.deposit({ metadata: md({ actor: "carol" }), walletId: buyerWallet, amountCents: 600n });
  await a.mintArtwork({ ...mint({ artworkId: sold }), royaltySplit: [{ recipientId: "ann", basisPoints: 1000 }] });
  await a.listForSale({ metadata: md({ actor: "ann" }), artworkId: sold, priceCents: 500n, payoutWalletId: "ann" });
  await a.mintArtwork(mint({ artworkId: unpaid }));
  await a.listForSale({ metadata: md({ actor: "ann" }), artworkId: unpaid, priceCents: 5n, payoutWalletId: neverOpened });
  await a.mintArtwork(mint({ artworkId: burned, artistId: "bob" }));
  await a.burnArtwork({ metadata: md({ actor: "bob" }), artworkId: burned });
  await client("grpc").purchases.buyArtwork(buy({ purchaseId: purchase, artworkId: sold, buyerId: "carol", buyerWalletId: buyerWallet }));
});
afterAll(async () => {
  // nats-server is stopped even when foldline never started (setup failed) or fails to close.
  try {
    await app.close();
  } finally {
    await nats.stop();
  }
});

/** One offending request: what it sends, the code it must get and what the message must say. */
interface BadCase {
  readonly name: string;
  readonly code: Code;
  readonly message: RegExp;
  readonly send: (c: Clients) => Promise<unknown>;
}

const invalid = Code.InvalidArgument;
const idRule = "must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'";
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const idMessage = (field: string): RegExp => new RegExp(`^${escape(field)} ${escape(idRule)}$`);

const cases: readonly BadCase[] = [
  // InvalidArgument: the metadata.
  {
    name: "no metadata",
    code: invalid,
    message: /^metadata is required \(it carries the command id\)$/,
    send: (c) => c.wallet.deposit({ walletId: wallet, amountCents: 5n }),
  },
  {
    name: "empty command id",
    code: invalid,
    message: /^metadata\.command_id is required$/,
    send: (c) => c.wallet.deposit({ metadata: md({ commandId: "" }), walletId: wallet, amountCents: 5n }),
  },
  {
    name: "command id that is no UUID",
    code: invalid,
    message: /^metadata\.command_id must be a UUID/,
    send: (c) => c.wallet.deposit({ metadata: md({ commandId: "order-42" }), walletId: wallet, amountCents: 5n }),
  },
  {
    name: "UUID command id without dashes",
    code: invalid,
    message: /^metadata\.command_id must be a UUID/,
    send: (c) =>
      c.wallet.deposit({ metadata: md({ commandId: randomUUID().replaceAll("-", "") }), walletId: wallet, amountCents: 5n }),
  },
  {
    name: "UUID command id in upper case",
    code: invalid,
    message: /^metadata\.command_id must be a UUID in canonical lower-case form/,
    send: (c) => c.wallet.deposit({ metadata: md({ commandId: randomUUID().toUpperCase() }), walletId: wallet, amountCents: 5n }),
  },
  {
    name: "the nil UUID as command id",
    code: invalid,
    message: /not the nil UUID$/,
    send: (c) =>
      c.wallet.deposit({ metadata: md({ commandId: "00000000-0000-0000-0000-000000000000" }), walletId: wallet, amountCents: 5n }),
  },
  {
    name: "UUID command id in braces",
    code: invalid,
    message: /^metadata\.command_id must be a UUID/,
    send: (c) => c.wallet.deposit({ metadata: md({ commandId: `{${randomUUID()}}` }), walletId: wallet, amountCents: 5n }),
  },
  {
    name: "UUID command id with a trailing space",
    code: invalid,
    message: /^metadata\.command_id must be a UUID/,
    send: (c) => c.wallet.deposit({ metadata: md({ commandId: `${randomUUID()} ` }), walletId: wallet, amountCents: 5n }),
  },
  {
    name: "36 characters that are no UUID",
    code: invalid,
    message: /^metadata\.command_id must be a UUID/,
    send: (c) => c.wallet.deposit({ metadata: md({ commandId: "z".repeat(36) }), walletId: wallet, amountCents: 5n }),
  },
  {
    name: "actor of 129 characters",
    code: invalid,
    message: /^metadata\.actor is 129 characters long; at most 128 are allowed$/,
    send: (c) => c.wallet.deposit({ metadata: md({ actor: long(129) }), walletId: wallet, amountCents: 5n }),
  },
  {
    name: "correlation id of 129 characters",
    code: invalid,
    message: /^metadata\.correlation_id is 129 characters long; at most 128 are allowed$/,
    send: (c) => c.wallet.deposit({ metadata: md({ correlationId: long(129) }), walletId: wallet, amountCents: 5n }),
  },
  {
    name: "causation id of 129 characters",
    code: invalid,
    message: /^metadata\.causation_id is 129 characters long; at most 128 are allowed$/,
    send: (c) => c.wallet.deposit({ metadata: md({ causationId: long(129) }), walletId: wallet, amountCents: 5n }),
  },
  {
    name: "expected version beyond any version",
    code: invalid,
    message: /^metadata\.expected_version 9007199254740992 is beyond any aggregate's version$/,
    send: (c) =>
      c.wallet.deposit({ metadata: md({ expectedVersion: 2n ** 53n }), walletId: wallet, amountCents: 5n }),
  },

  // InvalidArgument: ids.
  {
    name: "empty wallet id",
    code: invalid,
    message: /^wallet_id is required$/,
    send: (c) => c.wallet.deposit({ metadata: md(), walletId: "", amountCents: 5n }),
  },
  {
    name: "wallet id with a space",
    code: invalid,
    message: idMessage("wallet_id"),
    send: (c) => c.wallet.deposit({ metadata: md(), walletId: "my wallet", amountCents: 5n }),
  },
  {
    name: "wallet id with a dot (a subject token separator)",
    code: invalid,
    message: idMessage("wallet_id"),
    send: (c) => c.wallet.deposit({ metadata: md(), walletId: `${wallet}.x`, amountCents: 5n }),
  },
  {
    name: "wallet id with a wildcard",
    code: invalid,
    message: idMessage("wallet_id"),
    send: (c) => c.wallet.withdraw({ metadata: md(), walletId: "w>", amountCents: 5n }),
  },
  {
    name: "wallet id of 65 characters",
    code: invalid,
    message: idMessage("wallet_id"),
    send: (c) => c.wallet.openWallet({ metadata: md(), walletId: long(65), ownerId: "alice" }),
  },
  {
    name: "wallet id with a non-ASCII letter",
    code: invalid,
    message: idMessage("wallet_id"),
    send: (c) => c.wallet.openWallet({ metadata: md(), walletId: "wället", ownerId: "alice" }),
  },
  {
    name: "empty owner id",
    code: invalid,
    message: /^owner_id is required$/,
    send: (c) => c.wallet.openWallet({ metadata: md(), walletId: `o-${randomUUID()}`, ownerId: "" }),
  },
  {
    name: "owner id with a space",
    code: invalid,
    message: idMessage("owner_id"),
    send: (c) => c.wallet.openWallet({ metadata: md(), walletId: `o-${randomUUID()}`, ownerId: "al ice" }),
  },
  {
    name: "reservation id with a dot",
    code: invalid,
    message: idMessage("reservation_id"),
    send: (c) => c.wallet.reserveFunds({ metadata: md(), walletId: wallet, reservationId: "r.1", amountCents: 5n }),
  },
  {
    name: "empty reservation id",
    code: invalid,
    message: /^reservation_id is required$/,
    send: (c) => c.wallet.releaseReservation({ metadata: md(), walletId: wallet, reservationId: "" }),
  },
  {
    name: "artwork id with a space",
    code: invalid,
    message: idMessage("artwork_id"),
    send: (c) => c.artwork.mintArtwork(mint({ artworkId: "my art" })),
  },
  {
    name: "artwork id of 65 characters",
    code: invalid,
    message: idMessage("artwork_id"),
    send: (c) => c.artwork.mintArtwork(mint({ artworkId: long(65) })),
  },
  {
    name: "empty artist id",
    code: invalid,
    message: /^artist_id is required$/,
    send: (c) => c.artwork.mintArtwork(mint({ artistId: "" })),
  },
  {
    name: "new owner id with a dot",
    code: invalid,
    message: idMessage("new_owner_id"),
    send: (c) => c.artwork.transferOwnership({ metadata: md({ actor: "ann" }), artworkId: artwork, newOwnerId: "bo.b" }),
  },
  {
    name: "empty new owner id",
    code: invalid,
    message: /^new_owner_id is required$/,
    send: (c) => c.artwork.transferOwnership({ metadata: md({ actor: "ann" }), artworkId: artwork, newOwnerId: "" }),
  },

  {
    name: "purchase without an id",
    code: invalid,
    message: /^purchase_id is required$/,
    send: (c) => c.purchases.buyArtwork(buy({ purchaseId: "" })),
  },
  {
    name: "purchase paid from a malformed wallet id",
    code: invalid,
    message: idMessage("buyer_wallet_id"),
    send: (c) => c.purchases.buyArtwork(buy({ buyerWalletId: "w.1" })),
  },
  {
    name: "purchase without a buyer",
    code: invalid,
    message: /^buyer_id is required$/,
    send: (c) => c.purchases.buyArtwork(buy({ buyerId: "" })),
  },

  // InvalidArgument: texts.
  {
    name: "empty title",
    code: invalid,
    message: /^title is required$/,
    send: (c) => c.artwork.mintArtwork(mint({ title: "" })),
  },
  {
    name: "title of 201 characters",
    code: invalid,
    message: /^title is 201 characters long; at most 200 are allowed$/,
    send: (c) => c.artwork.mintArtwork(mint({ title: long(201) })),
  },
  {
    name: "empty content hash",
    code: invalid,
    message: /^content_hash is required$/,
    send: (c) => c.artwork.mintArtwork(mint({ contentHash: "" })),
  },
  {
    name: "content hash of 129 characters",
    code: invalid,
    message: /^content_hash is 129 characters long; at most 128 are allowed$/,
    send: (c) => c.artwork.mintArtwork(mint({ contentHash: long(129) })),
  },

  // InvalidArgument: amounts and prices.
  {
    name: "deposit of zero",
    code: invalid,
    message: /^amount_cents must be greater than 0, got 0$/,
    send: (c) => c.wallet.deposit({ metadata: md(), walletId: wallet, amountCents: 0n }),
  },
  {
    name: "negative deposit",
    code: invalid,
    message: /^amount_cents must be greater than 0, got -100$/,
    send: (c) => c.wallet.deposit({ metadata: md(), walletId: wallet, amountCents: -100n }),
  },
  {
    name: "deposit of the int64 minimum",
    code: invalid,
    message: /^amount_cents must be greater than 0, got -9223372036854775808$/,
    send: (c) => c.wallet.deposit({ metadata: md(), walletId: wallet, amountCents: -(2n ** 63n) }),
  },
  {
    name: "negative withdrawal",
    code: invalid,
    message: /^amount_cents must be greater than 0, got -1$/,
    send: (c) => c.wallet.withdraw({ metadata: md(), walletId: wallet, amountCents: -1n }),
  },
  {
    name: "reservation of zero",
    code: invalid,
    message: /^amount_cents must be greater than 0, got 0$/,
    send: (c) => c.wallet.reserveFunds({ metadata: md(), walletId: wallet, reservationId: "r-zero", amountCents: 0n }),
  },
  {
    name: "price of zero",
    code: invalid,
    message: /^price_cents must be greater than 0, got 0$/,
    send: (c) => c.artwork.listForSale({ metadata: md({ actor: "ann" }), artworkId: artwork, priceCents: 0n }),
  },
  {
    name: "negative price",
    code: invalid,
    message: /^price_cents must be greater than 0, got -500$/,
    send: (c) => c.artwork.listForSale({ metadata: md({ actor: "ann" }), artworkId: artwork, priceCents: -500n }),
  },

  {
    name: "listing without a payout wallet",
    code: invalid,
    message: /^payout_wallet_id is required$/,
    send: (c) => c.artwork.listForSale({ metadata: md({ actor: "ann" }), artworkId: artwork, priceCents: 700n }),
  },
  {
    name: "purchase at no price",
    code: invalid,
    message: /^price_cents must be greater than 0, got 0$/,
    send: (c) => c.purchases.buyArtwork(buy({ priceCents: 0n })),
  },

  // InvalidArgument: royalty splits.
  {
    name: "mint with 17 royalty recipients",
    code: invalid,
    message: /^royalty_split has 17 entries; at most 16 are allowed$/,
    send: (c) => c.artwork.mintArtwork({ ...mint(), royaltySplit: shares(17) }),
  },
  {
    name: "split change with 17 royalty recipients",
    code: invalid,
    message: /^royalty_split has 17 entries; at most 16 are allowed$/,
    send: (c) => c.artwork.setRoyaltySplit({ metadata: md({ actor: "ann" }), artworkId: artwork, royaltySplit: shares(17) }),
  },
  {
    name: "duplicate royalty recipient",
    code: invalid,
    message: /^royalty split names recipient dup more than once$/,
    send: (c) =>
      c.artwork.mintArtwork({
        ...mint(),
        royaltySplit: [
          { recipientId: "dup", basisPoints: 10 },
          { recipientId: "other", basisPoints: 10 },
          { recipientId: "dup", basisPoints: 20 },
        ],
      }),
  },
  {
    name: "zero royalty share",
    code: invalid,
    message: /^royalty share of nil is 0 bps; each share must be a positive integer$/,
    send: (c) => c.artwork.mintArtwork({ ...mint(), royaltySplit: [{ recipientId: "nil", basisPoints: 0 }] }),
  },
  {
    name: "royalty total above 10 000 bps",
    code: invalid,
    message: /^royalty split total 10001 bps exceeds 10000$/,
    send: (c) =>
      c.artwork.mintArtwork({
        ...mint(),
        royaltySplit: [
          { recipientId: "a", basisPoints: 5000 },
          { recipientId: "b", basisPoints: 5001 },
        ],
      }),
  },
  {
    name: "royalty total above 10 000 bps on a split change",
    code: invalid,
    message: /^royalty split total 16000 bps exceeds 10000$/,
    send: (c) => c.artwork.setRoyaltySplit({ metadata: md({ actor: "ann" }), artworkId: artwork, royaltySplit: shares(16, 1000) }),
  },
  {
    name: "royalty recipient id with a dot",
    code: invalid,
    message: idMessage("royalty_split[1].recipient_id"),
    send: (c) =>
      c.artwork.mintArtwork({
        ...mint(),
        royaltySplit: [
          { recipientId: "ok", basisPoints: 10 },
          { recipientId: "not.ok", basisPoints: 10 },
        ],
      }),
  },

  // InvalidArgument: the actor the artwork rules need.
  {
    name: "split change without an actor",
    code: invalid,
    message: /^metadata\.actor is required$/,
    send: (c) => c.artwork.setRoyaltySplit({ metadata: md({ actor: "" }), artworkId: artwork, royaltySplit: [] }),
  },
  {
    name: "listing without an actor",
    code: invalid,
    message: /^metadata\.actor is required$/,
    send: (c) => c.artwork.listForSale({ metadata: md({ actor: "" }), artworkId: artwork, priceCents: 700n }),
  },
  {
    name: "delisting without an actor",
    code: invalid,
    message: /^metadata\.actor is required$/,
    send: (c) => c.artwork.delist({ metadata: md({ actor: "" }), artworkId: artwork }),
  },
  {
    name: "transfer without an actor",
    code: invalid,
    message: /^metadata\.actor is required$/,
    send: (c) => c.artwork.transferOwnership({ metadata: md({ actor: "" }), artworkId: artwork, newOwnerId: "carol" }),
  },
  {
    name: "burn without an actor",
    code: invalid,
    message: /^metadata\.actor is required$/,
    send: (c) => c.artwork.burnArtwork({ metadata: md({ actor: "" }), artworkId: artwork }),
  },

  // NotFound.
  {
    name: "deposit to a wallet never opened",
    code: Code.NotFound,
    message: new RegExp(`^wallet ${neverOpened} does not exist$`),
    send: (c) => c.wallet.deposit({ metadata: md(), walletId: neverOpened, amountCents: 5n }),
  },
  {
    name: "reservation in a wallet never opened",
    code: Code.NotFound,
    message: new RegExp(`^wallet ${neverOpened} does not exist$`),
    send: (c) => c.wallet.reserveFunds({ metadata: md(), walletId: neverOpened, reservationId: "r", amountCents: 5n }),
  },
  {
    name: "listing of an artwork never minted",
    code: Code.NotFound,
    message: new RegExp(`^artwork ${neverMinted} does not exist$`),
    send: (c) => c.artwork.listForSale({ metadata: md({ actor: "ann" }), artworkId: neverMinted, priceCents: 5n, payoutWalletId: "ann" }),
  },
  {
    name: "burn of an artwork never minted",
    code: Code.NotFound,
    message: new RegExp(`^artwork ${neverMinted} does not exist$`),
    send: (c) => c.artwork.burnArtwork({ metadata: md({ actor: "ann" }), artworkId: neverMinted }),
  },

  // AlreadyExists.
  {
    name: "opening an open wallet",
    code: Code.AlreadyExists,
    message: new RegExp(`^wallet ${wallet} already exists$`),
    send: (c) => c.wallet.openWallet({ metadata: md(), walletId: wallet, ownerId: "alice" }),
  },
  {
    name: "minting an existing artwork",
    code: Code.AlreadyExists,
    message: new RegExp(`^artwork ${artwork} already exists$`),
    send: (c) => c.artwork.mintArtwork(mint({ artworkId: artwork })),
  },
  {
    name: "minting a burned artwork's id",
    code: Code.AlreadyExists,
    message: new RegExp(`^artwork ${burned} already exists \\(burned\\)$`),
    send: (c) => c.artwork.mintArtwork(mint({ artworkId: burned, artistId: "bob" })),
  },
  {
    name: "purchase whose payout wallet nobody opened",
    code: Code.NotFound,
    message: new RegExp(`^wallet ${neverOpened}, which artwork ${unpaid} pays the proceeds of 5 cents into, does not exist$`),
    send: (c) => c.purchases.buyArtwork(buy({ artworkId: unpaid, priceCents: 5n })),
  },
  {
    name: "purchase from a wallet never opened",
    code: Code.NotFound,
    message: new RegExp(`^wallet ${neverOpened} does not exist$`),
    send: (c) => c.purchases.buyArtwork(buy({ buyerWalletId: neverOpened })),
  },
  {
    name: "purchase at another price than listed",
    code: Code.FailedPrecondition,
    message: new RegExp(`^artwork ${artwork} is listed at 500 cents; purchase p-[0-9a-f-]+ offered 400$`),
    send: (c) => c.purchases.buyArtwork(buy({ priceCents: 400n })),
  },
  {
    name: "purchase its buyer cannot pay",
    code: Code.FailedPrecondition,
    message: /^insufficient funds: available 100, requested 500$/,
    send: (c) => c.purchases.buyArtwork(buy({ buyerId: "carol", buyerWalletId: buyerWallet })),
  },
  {
    name: "purchase of an artwork sold already, by its new owner",
    code: Code.FailedPrecondition,
    message: new RegExp(`^artwork ${sold} is not listed for sale$`),
    send: (c) => c.purchases.buyArtwork(buy({ artworkId: sold, buyerId: "carol", buyerWalletId: buyerWallet })),
  },
  {
    name: "a purchase id used before",
    code: Code.AlreadyExists,
    message: new RegExp(`^purchase ${purchase} already exists$`),
    send: (c) => c.purchases.buyArtwork(buy({ purchaseId: purchase })),
  },
  {
    name: "reusing a command id with a different request",
    code: Code.AlreadyExists,
    message: new RegExp(`^command id ${depositCommandId} was already used for a different request$`),
    send: (c) => c.wallet.deposit({ ...depositRequest, amountCents: 999n }),
  },

  // FailedPrecondition: the wallet's rules.
  {
    name: "overdraw",
    code: Code.FailedPrecondition,
    message: new RegExp(`^insufficient funds: available ${walletAvailable}, requested ${walletAvailable + 1n}$`),
    send: (c) => c.wallet.withdraw({ metadata: md(), walletId: wallet, amountCents: walletAvailable + 1n }),
  },
  {
    name: "reservation beyond the available funds",
    code: Code.FailedPrecondition,
    message: new RegExp(`^insufficient funds: available ${walletAvailable}, requested ${walletBalance}$`),
    send: (c) => c.wallet.reserveFunds({ metadata: md(), walletId: wallet, reservationId: "r-big", amountCents: walletBalance }),
  },
  {
    name: "deposit beyond the largest balance",
    code: Code.FailedPrecondition,
    message: /above the maximum 9223372036854775807$/,
    send: (c) => c.wallet.deposit({ metadata: md(), walletId: wallet, amountCents: 2n ** 63n - 1n }),
  },
  {
    name: "held reservation id with another amount",
    code: Code.FailedPrecondition,
    message: /^reservation r-held already holds 200; requested 201$/,
    send: (c) => c.wallet.reserveFunds({ metadata: md(), walletId: wallet, reservationId: "r-held", amountCents: 201n }),
  },
  {
    name: "releasing a reservation twice",
    code: Code.FailedPrecondition,
    message: /^reservation r-rel was already released; a reservation is closed once$/,
    send: (c) => c.wallet.releaseReservation({ metadata: md(), walletId: wallet, reservationId: "r-rel" }),
  },
  {
    name: "settling a released reservation",
    code: Code.FailedPrecondition,
    message: /^reservation r-rel was already released; a reservation is closed once$/,
    send: (c) => c.wallet.settleReservation({ metadata: md(), walletId: wallet, reservationId: "r-rel" }),
  },
  {
    name: "settling a reservation twice",
    code: Code.FailedPrecondition,
    message: /^reservation r-set was already settled; a reservation is closed once$/,
    send: (c) => c.wallet.settleReservation({ metadata: md(), walletId: wallet, reservationId: "r-set" }),
  },
  {
    name: "reserving under a settled reservation's id",
    code: Code.FailedPrecondition,
    message: /^reservation r-set was already settled; a reservation id is used once$/,
    send: (c) => c.wallet.reserveFunds({ metadata: md(), walletId: wallet, reservationId: "r-set", amountCents: 30n }),
  },
  {
    name: "releasing an unknown reservation",
    code: Code.FailedPrecondition,
    message: new RegExp(`^no reservation r-none in wallet ${wallet}$`),
    send: (c) => c.wallet.releaseReservation({ metadata: md(), walletId: wallet, reservationId: "r-none" }),
  },

  // FailedPrecondition: the artwork's rules.
  {
    name: "listing by a non-owner",
    code: Code.FailedPrecondition,
    message: new RegExp(`^only the owner \\(ann\\) may list artwork ${artwork}; mallory is not$`),
    send: (c) => c.artwork.listForSale({ metadata: md({ actor: "mallory" }), artworkId: artwork, priceCents: 1n, payoutWalletId: "ann" }),
  },
  {
    name: "transfer by a non-owner",
    code: Code.FailedPrecondition,
    message: new RegExp(`^only the owner \\(ann\\) may transfer artwork ${artwork}; mallory is not$`),
    send: (c) => c.artwork.transferOwnership({ metadata: md({ actor: "mallory" }), artworkId: artwork, newOwnerId: "mallory" }),
  },
  {
    name: "burn by a non-owner",
    code: Code.FailedPrecondition,
    message: new RegExp(`^only the owner \\(ann\\) may burn artwork ${artwork}; mallory is not$`),
    send: (c) => c.artwork.burnArtwork({ metadata: md({ actor: "mallory" }), artworkId: artwork }),
  },
  {
    name: "split change by a non-artist",
    code: Code.FailedPrecondition,
    message: new RegExp(`^only the artist \\(ann\\) may change the royalty split of artwork ${artwork}; mallory is not$`),
    send: (c) =>
      c.artwork.setRoyaltySplit({
        metadata: md({ actor: "mallory" }),
        artworkId: artwork,
        royaltySplit: [{ recipientId: "mallory", basisPoints: 10_000 }],
      }),
  },
  ...(["list", "delist", "transfer", "split", "burn"] as const).map(
    (verb): BadCase => ({
      name: `${verb} of a burned artwork, by its last owner`,
      code: Code.FailedPrecondition,
      message: new RegExp(`^artwork ${burned} is burned$`),
      send: (c) => {
        const metadata = md({ actor: "bob" });
        switch (verb) {
          case "list":
            return c.artwork.listForSale({ metadata, artworkId: burned, priceCents: 5n, payoutWalletId: "ann" });
          case "delist":
            return c.artwork.delist({ metadata, artworkId: burned });
          case "transfer":
            return c.artwork.transferOwnership({ metadata, artworkId: burned, newOwnerId: "carol" });
          case "split":
            return c.artwork.setRoyaltySplit({ metadata, artworkId: burned, royaltySplit: [] });
          case "burn":
            return c.artwork.burnArtwork({ metadata, artworkId: burned });
        }
      },
    }),
  ),

  // FailedPrecondition: the expected version.
  {
    name: "expected version behind the wallet's",
    code: Code.FailedPrecondition,
    message: new RegExp(`^ev\\.wallet\\.${wallet} is at version ${walletVersion}, not the expected 3$`),
    send: (c) => c.wallet.deposit({ metadata: md({ expectedVersion: 3n }), walletId: wallet, amountCents: 5n }),
  },
  {
    name: "expected version ahead of the wallet's",
    code: Code.FailedPrecondition,
    message: new RegExp(`^ev\\.wallet\\.${wallet} is at version ${walletVersion}, not the expected ${walletVersion + 1}$`),
    send: (c) =>
      c.wallet.deposit({ metadata: md({ expectedVersion: BigInt(walletVersion + 1) }), walletId: wallet, amountCents: 5n }),
  },
  {
    name: "expected version 0 (create only) of an open wallet",
    code: Code.FailedPrecondition,
    message: new RegExp(`^ev\\.wallet\\.${wallet} is at version ${walletVersion}, not the expected 0$`),
    send: (c) => c.wallet.openWallet({ metadata: md({ expectedVersion: 0n }), walletId: wallet, ownerId: "alice" }),
  },
  {
    name: "expected version 1 of an artwork not minted yet",
    code: Code.FailedPrecondition,
    message: /^ev\.artwork\.m-[0-9a-f-]+ is at version 0, not the expected 1$/,
    send: (c) => c.artwork.mintArtwork({ ...mint(), metadata: md({ actor: "ann", expectedVersion: 1n }) }),
  },
];

/** Sends a case and checks its refusal, and that the stream's head did not move. */
async function expectRefused(c: Clients, { code, message, send }: BadCase): Promise<void> {
  const before = await app.streams.store.head();
  const err = await send(c).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "the request was accepted").toBeInstanceOf(ConnectError);
  const refusal = ConnectError.from(err);
  expect(Code[refusal.code]).toBe(Code[code]);
  expect(refusal.rawMessage).toMatch(message);
  expect(await app.streams.store.head()).toBe(before);
}

it("has a case for at least 40 bad requests, each with its own name", () => {
  expect(cases.length).toBeGreaterThanOrEqual(40);
  expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
});

describe("over gRPC", () => {
  it.each(cases)("refuses $name", (badCase) => expectRefused(client("grpc"), badCase));
});

describe("over Connect", () => {
  const again = [
    "no metadata",
    "command id that is no UUID",
    "wallet id with a dot (a subject token separator)",
    "title of 201 characters",
    "negative deposit",
    "duplicate royalty recipient",
    "deposit to a wallet never opened",
    "reusing a command id with a different request",
    "overdraw",
    "split change by a non-artist",
    "expected version behind the wallet's",
  ];
  it.each(cases.filter((c) => again.includes(c.name)))("refuses $name", (badCase) => expectRefused(client("connect"), badCase));
  it("runs every case named", () => {
    expect(cases.filter((c) => again.includes(c.name))).toHaveLength(again.length);
  });
});

describe("on the Execute stream", () => {
  it.each(["grpc", "connect"] as const)("answers each bad command with its error and goes on (%s)", async (protocol) => {
    const s = `s-${protocol}-${run}`;
    type Request = MessageInitShape<typeof ExecuteRequestSchema>;
    const requests: Request[] = [
      { command: { case: "openWallet", value: { metadata: md(), walletId: s, ownerId: "alice" } } },
      {},
      { command: { case: "deposit", value: { metadata: md(), walletId: "s.1", amountCents: 5n } } },
      { command: { case: "deposit", value: { metadata: md(), walletId: neverOpened, amountCents: 5n } } },
      { command: { case: "deposit", value: { walletId: s, amountCents: 5n } } },
      { command: { case: "deposit", value: { metadata: md(), walletId: s, amountCents: 5n } } },
      { command: { case: "withdraw", value: { metadata: md(), walletId: s, amountCents: 10n } } },
      { command: { case: "openWallet", value: { metadata: md(), walletId: s, ownerId: "alice" } } },
      { command: { case: "deposit", value: { metadata: md({ expectedVersion: 1n }), walletId: s, amountCents: 7n } } },
      { command: { case: "deposit", value: { metadata: md({ expectedVersion: 2n }), walletId: s, amountCents: 7n } } },
    ];
    const before = await app.streams.store.head();
    const answers: ExecuteResponse["outcome"][] = [];
    for await (const answer of client(protocol).commands.execute(createAsyncIterable(requests))) answers.push(answer.outcome);

    const summary = answers.map((o) =>
      o.case === "error" ? `${o.value.code}: ${o.value.message}` : `${o.case ?? "none"} v${o.value?.result?.version ?? 0n}`,
    );
    expect(summary).toHaveLength(requests.length);
    expect(summary[0]).toBe("openWallet v1");
    expect(summary[1]).toMatch(/^invalid_argument: the ExecuteRequest carries no command/);
    expect(summary[2]).toMatch(/^invalid_argument: wallet_id must be 1 to 64 characters/);
    expect(summary[3]).toBe(`not_found: wallet ${neverOpened} does not exist`);
    expect(summary[4]).toMatch(/^invalid_argument: metadata is required/);
    expect(summary[5]).toBe("deposit v2");
    expect(summary[6]).toBe("failed_precondition: insufficient funds: available 5, requested 10");
    expect(summary[7]).toBe(`already_exists: wallet ${s} already exists`);
    expect(summary[8]).toBe(`failed_precondition: ev.wallet.${s} is at version 2, not the expected 1`);
    expect(summary[9]).toBe("deposit v3");
    // Three commands were accepted, nothing else was appended.
    expect(await commitsBetween(app.streams.store, before)).toBe(3);
  });
});

describe("aborted", () => {
  it("answers ABORTED when a stale cache meets another writer with one attempt allowed, and honours expected_version past a stale cache", async () => {
    // A second process on the same stream, with one attempt per command and its cache on (the default size).
    const second = await startTestApp(nats, { COMMAND_MAX_ATTEMPTS: "1" });
    try {
      const first = client("grpc");
      const other = clients(second.url, "grpc");
      const w = `ab-${randomUUID()}`;
      const deposit = (c: Clients, amountCents: bigint, over: MetadataInit = {}) =>
        c.wallet.deposit({ metadata: md(over), walletId: w, amountCents });

      await first.wallet.openWallet({ metadata: md(), walletId: w, ownerId: "alice" }); // v1
      expect((await deposit(other, 100n)).result?.version).toBe(2n); // the second app now caches v2
      expect((await deposit(first, 10n)).result?.version).toBe(3n); // moves the wallet past the second's cache

      const conflictsBefore = second.pipeline.stats.conflicts;
      const before = await app.streams.store.head();
      const retried = { metadata: md(), walletId: w, amountCents: 7n };
      const err = await other.wallet.deposit(retried).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConnectError);
      const aborted = ConnectError.from(err);
      expect(Code[aborted.code]).toBe(Code[Code.Aborted]);
      expect(aborted.rawMessage).toBe(
        `ev.wallet.${w} kept changing under concurrent writers; gave up after 1 attempts, retry the command`,
      );
      expect(second.pipeline.stats.conflicts).toBe(conflictsBefore + 1);
      expect(await app.streams.store.head()).toBe(before);

      // The refusal left no record behind: the same command, sent again, now goes through.
      expect((await other.wallet.deposit(retried)).result?.version).toBe(4n);

      // Make the second app's cache stale again (it holds v4; the first app writes v5), then send a command
      // through the second app expecting the true version: the stream, not the stale cache, decides.
      expect((await deposit(first, 20n)).result?.version).toBe(5n);
      const { appends, loads, conflicts } = second.pipeline.stats;
      const expected = await deposit(other, 30n, { expectedVersion: 5n });
      expect(expected.result?.version).toBe(6n);
      // One reload of the stale entry, then one append that met no conflict.
      expect(second.pipeline.stats).toMatchObject({ appends: appends + 1, loads: loads + 1, conflicts });

      // A version that really is wrong is still refused, through either app.
      for (const c of [first, other]) {
        await expect(deposit(c, 1n, { expectedVersion: 5n })).rejects.toThrow(
          new RegExp(`ev\\.wallet\\.${w} is at version 6, not the expected 5`),
        );
      }
      // The second app caches v6; the first writes v7. Expecting v6 through the second app matches its stale
      // cache, so the append is tried and conflicts: the caller's version is out of date, and that is the answer,
      // even with no attempt left.
      expect((await deposit(first, 40n)).result?.version).toBe(7n);
      await expect(deposit(other, 1n, { expectedVersion: 6n })).rejects.toMatchObject({
        code: Code.FailedPrecondition,
        rawMessage: `ev.wallet.${w} is at version 7, not the expected 6`,
      });
      const commits = await app.streams.store.readAggregate(`ev.wallet.${w}`);
      expect(commits.map((cm) => cm.metadata.aggregateVersion)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    } finally {
      await second.close();
    }
  });
});

describe("a stale cache", () => {
  it("never refuses a command, nor answers that nothing changes, from a state another process has moved past", async () => {
    const second = await startTestApp(nats);
    try {
      const first = client("grpc");
      const other = clients(second.url, "grpc");
      const w = `st-${randomUUID()}`;
      await first.wallet.openWallet({ metadata: md(), walletId: w, ownerId: "alice" });
      await other.wallet.deposit({ metadata: md(), walletId: w, amountCents: 10n }); // the second app caches 10
      await first.wallet.deposit({ metadata: md(), walletId: w, amountCents: 90n }); // the stream holds 100

      // Its cache says 10 are available: only the stream knows that 50 can be withdrawn.
      const { loads } = second.pipeline.stats;
      const withdrawn = await other.wallet.withdraw({ metadata: md(), walletId: w, amountCents: 50n });
      expect(withdrawn.result?.version).toBe(4n);
      expect(second.pipeline.stats.loads).toBe(loads + 1);

      // An artwork listed through one app, delisted through the other, whose cache still says unlisted: the
      // delist is not a no-op.
      const artworkId = `st-${randomUUID()}`;
      await other.artwork.mintArtwork(mint({ artworkId }));
      await first.artwork.listForSale({ metadata: md({ actor: "ann" }), artworkId, priceCents: 5n, payoutWalletId: "ann" });
      const delisted = await other.artwork.delist({ metadata: md({ actor: "ann" }), artworkId });
      expect(delisted.events.map((e) => e.event.case)).toEqual(["delisted"]);

      // A refusal that holds against the stream too is still answered, after one look at it.
      await expect(other.wallet.withdraw({ metadata: md(), walletId: w, amountCents: 51n })).rejects.toMatchObject({
        code: Code.FailedPrecondition,
      });
    } finally {
      await second.close();
    }
  });
});

describe("text limits", () => {
  it("counts characters, not UTF-16 units: 200 emoji make a valid title, 201 do not", async () => {
    const c = client("grpc");
    const ok = await c.artwork.mintArtwork(mint({ artworkId: `emoji-${randomUUID()}`, title: "🎨".repeat(200) }));
    expect(ok.result?.version).toBe(1n);
    await expect(c.artwork.mintArtwork(mint({ artworkId: `emoji-${randomUUID()}`, title: "🎨".repeat(201) }))).rejects.toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: "title is 201 characters long; at most 200 are allowed",
    });
  });
});

describe("internal", () => {
  it("answers INTERNAL with no detail when an aggregate's history cannot be read", async () => {
    const w = `int-${randomUUID()}`;
    await app.streams.store.append(
      `ev.wallet.${w}`,
      [{ type: "foldline.marketplace.v1.NoSuchEvent", schemaVersion: 1, payload: new Uint8Array() }],
      { commandId: randomUUID() },
    );
    // The app has never addressed this wallet, so nothing of it is cached: the deposit loads it from the stream.
    const before = await app.streams.store.head();
    const request = { metadata: md(), walletId: w, amountCents: 5n };
    for (let attempt = 0; attempt < 2; attempt++) {
      const err = await client("grpc").wallet.deposit(request).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConnectError);
      const internal = ConnectError.from(err);
      expect(Code[internal.code]).toBe(Code[Code.Internal]);
      expect(internal.rawMessage).toBe("internal error");
      expect(internal.details).toEqual([]);
    }
    const one: MessageInitShape<typeof ExecuteRequestSchema>[] = [
      { command: { case: "deposit", value: { metadata: md(), walletId: w, amountCents: 5n } } },
    ];
    const answers: ExecuteResponse["outcome"][] = [];
    for await (const answer of client("connect").commands.execute(createAsyncIterable(one))) answers.push(answer.outcome);
    expect(answers).toEqual([{ case: "error", value: expect.objectContaining({ code: "internal", message: "internal error" }) as unknown }]);
    expect(await app.streams.store.head()).toBe(before);
  });
});

describe("afterwards", () => {
  it("is still serving, and the refusals' wallet holds exactly what its accepted commands imply", async () => {
    for (const protocol of ["grpc", "connect"] as const) {
      const health = await client(protocol).health.check({ service: "" });
      expect(health.status).toBe(ServingStatus.SERVING);
    }

    // Fold the wallet's whole history from the stream: eight commits, the fixtures' and nothing else.
    const commits = await app.streams.store.readAggregate(`ev.wallet.${wallet}`);
    expect(commits.map((cm) => cm.metadata.aggregateVersion)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    let balance = 0n;
    const held = new Map<string, bigint>();
    for (const { type, payload } of commits.flatMap((cm) => cm.events)) {
      if (type === WalletOpenedSchema.typeName) continue;
      if (type === FundsDepositedSchema.typeName) balance += fromBinary(FundsDepositedSchema, payload).amountCents;
      else if (type === FundsWithdrawnSchema.typeName) balance -= fromBinary(FundsWithdrawnSchema, payload).amountCents;
      else if (type === FundsReservedSchema.typeName) {
        const m = fromBinary(FundsReservedSchema, payload);
        held.set(m.reservationId, m.amountCents);
      } else if (type === ReservationReleasedSchema.typeName) {
        held.delete(fromBinary(ReservationReleasedSchema, payload).reservationId);
      } else if (type === ReservationSettledSchema.typeName) {
        const m = fromBinary(ReservationSettledSchema, payload);
        balance -= m.amountCents;
        held.delete(m.reservationId);
      } else throw new Error(`unexpected event ${type}`);
    }
    expect(balance).toBe(walletBalance);
    expect([...held]).toEqual([["r-held", 200n]]);

    // A repeat of the fixture's deposit still answers its first commit, and appends nothing.
    const before = await app.streams.store.head();
    const repeat = await client("grpc").wallet.deposit(depositRequest);
    expect(repeat.result?.version).toBe(2n);
    expect(repeat.result?.position).toBe(BigInt(commits[1]?.seq ?? 0));
    expect(await app.streams.store.head()).toBe(before);

    // A good command still works, and the server's state agrees with the fold: every available cent can be
    // withdrawn, and not one more.
    const good = await client("grpc").wallet.withdraw({ metadata: md(), walletId: wallet, amountCents: walletAvailable });
    expect(good.result?.version).toBe(BigInt(walletVersion + 1));
    expect(good.result?.position).toBe(BigInt(await app.streams.store.head()));
    expect(await commitsBetween(app.streams.store, before)).toBe(1);
    await expect(client("grpc").wallet.withdraw({ metadata: md(), walletId: wallet, amountCents: 1n })).rejects.toThrow(
      /insufficient funds: available 0, requested 1/,
    );
  });
});
