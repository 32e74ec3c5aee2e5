// Atomicity under faults: 64 concurrent purchases and transfers over overlapping wallets and artworks while the API
// server is killed with kill -9 five times. Read back from the stream directly, every batch is whole or absent, no
// wallet is negative, money is conserved to the cent (deposits − withdrawals = balances), every royalty is paid
// exactly once per sale, and every acknowledged command is in the stream exactly once, where its answer says.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";
import { decodeRecord } from "../commands/command-records.js";
import { decodeArtworkEvent } from "../commands/marketplace/artwork-events.js";
import { artworkDecider } from "../domain/artwork/decider.js";
import type { ArtworkState, Payout, RoyaltyShare } from "../domain/artwork/types.js";
import {
  ListForSaleResponseSchema,
  TransferOwnershipResponseSchema,
  type ListForSaleResponse,
  type TransferOwnershipResponse,
} from "../gen/foldline/marketplace/v1/artwork_service_pb.js";
import { BuyArtworkResponseSchema, type BuyArtworkResponse } from "../gen/foldline/marketplace/v1/purchase_service_pb.js";
import { WithdrawResponseSchema, type WithdrawResponse } from "../gen/foldline/marketplace/v1/wallet_service_pb.js";
import { decodeCommit } from "../streams/commit-codec.js";
import { createEventStore, type EventStore } from "../streams/event-store.js";
import { clients, type Clients } from "./harness/app.js";
import { startApiServer, type NpmProcess } from "./harness/npm-process.js";
import { startTestNats, type TestNats } from "./harness/nats.js";
import { marketplaceFromStream } from "./harness/purchases.js";

const dir = mkdtempSync(join(tmpdir(), "foldline-purchase-kills-"));
let nats: TestNats | undefined;
let reader: NatsConnection | undefined;
const servers: NpmProcess[] = [];
afterAll(async () => {
  try {
    await Promise.all(servers.map((s) => s.killAll()));
  } finally {
    try {
      await reader?.close();
    } finally {
      await nats?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

/** How long each `npm start` took to come up, in ms. */
const boots: number[] = [];
/** `npm start` on the test's nats-server, projectors elsewhere; resolves with its API's URL once it is up. */
async function startServer(url: string): Promise<{ server: NpmProcess; api: string }> {
  const from = Date.now();
  const started = await startApiServer(url, dir, servers);
  boots.push(Date.now() - from);
  return started;
}

/** One client set per server URL: one HTTP/2 connection per server rather than one per call. */
const clientsByUrl = new Map<string, Clients>();
const clientsOf = (url: string): Clients => {
  let c = clientsByUrl.get(url);
  if (c === undefined) clientsByUrl.set(url, (c = clients(url)));
  return c;
};

interface Meta {
  readonly commandId: string;
  readonly actor: string;
}

type Sent =
  | {
      readonly kind: "buy";
      readonly request: { readonly metadata: Meta; readonly purchaseId: string; readonly artworkId: string; readonly buyerId: string; readonly buyerWalletId: string; readonly priceCents: bigint };
      answer?: BuyArtworkResponse;
    }
  | {
      readonly kind: "list";
      readonly request: { readonly metadata: Meta; readonly artworkId: string; readonly priceCents: bigint; readonly payoutWalletId: string };
      answer?: ListForSaleResponse;
    }
  | {
      readonly kind: "transfer";
      readonly request: { readonly metadata: Meta; readonly artworkId: string; readonly newOwnerId: string };
      answer?: TransferOwnershipResponse;
    }
  | {
      readonly kind: "withdraw";
      readonly request: { readonly metadata: Meta; readonly walletId: string; readonly amountCents: bigint };
      answer?: WithdrawResponse;
    };

/** A command sent under load, with what became of it. */
type Tracked = Sent & {
  /** The refusal's code and message, when it was refused. */
  refused?: { readonly code: Code; readonly message: string };
  /** Calls that met a server going down (or down), before the one that settled it. */
  failures: number;
  /** When the last call started: for an answered command, the call that answered it. */
  lastCallAt?: number;
};

const commandIdOf = (s: Tracked): string => s.request.metadata.commandId;

/** Sends `s` once to the server at `url`. */
async function sendOnce(s: Tracked, url: string): Promise<void> {
  const c = clientsOf(url);
  const options = { timeoutMs: 10_000 };
  switch (s.kind) {
    case "buy":
      s.answer = await c.purchases.buyArtwork(s.request, options);
      return;
    case "list":
      s.answer = await c.artwork.listForSale(s.request, options);
      return;
    case "transfer":
      s.answer = await c.artwork.transferOwnership(s.request, options);
      return;
    case "withdraw":
      s.answer = await c.wallet.withdraw(s.request, options);
      return;
  }
}

/** The answer's bytes on the wire. */
function answerBytes(s: Tracked): Buffer {
  switch (s.kind) {
    case "buy":
      return Buffer.from(toBinary(BuyArtworkResponseSchema, s.answer as BuyArtworkResponse));
    case "list":
      return Buffer.from(toBinary(ListForSaleResponseSchema, s.answer as ListForSaleResponse));
    case "transfer":
      return Buffer.from(toBinary(TransferOwnershipResponseSchema, s.answer as TransferOwnershipResponse));
    case "withdraw":
      return Buffer.from(toBinary(WithdrawResponseSchema, s.answer as WithdrawResponse));
  }
}

/** The refusals a command may meet under this load; anything else is a server going down, or a bug. */
const refusals = new Set([Code.FailedPrecondition, Code.NotFound, Code.Aborted]);
/** What a call meets when the server it talks to is killed or not up yet: retried with the same command id. */
const transient = new Set([Code.Unavailable, Code.Internal, Code.Unknown, Code.Canceled, Code.DeadlineExceeded]);

/**
 * Whether the error is the client's own, of a connection that broke (a killed server): connect-node answers a
 * reset connection ABORTED, with the Node error as its cause, where a server's answer has none.
 */
function fromTransport(e: ConnectError): boolean {
  for (let cause: unknown = e.cause; cause instanceof Error; cause = cause.cause) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string" && /^(E[A-Z]+|ERR_[A-Z0-9_]+)$/.test(code)) return true;
  }
  return false;
}

/**
 * Sends `s` until it is answered or refused, at most `attempts` times, each time to the server `url()` names then.
 * A code neither a refusal nor transient is recorded as a refusal, for the assertions to report.
 */
async function settle(s: Tracked, url: () => string, attempts: number, seenCodes: Map<string, number>): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    try {
      s.lastCallAt = Date.now();
      await sendOnce(s, url());
      return;
    } catch (err) {
      const e = ConnectError.from(err);
      if (!fromTransport(e) && (refusals.has(e.code) || !transient.has(e.code))) {
        s.refused = { code: e.code, message: e.rawMessage };
        return;
      }
      s.failures++;
      seenCodes.set(Code[e.code], (seenCodes.get(Code[e.code]) ?? 0) + 1);
      await sleep(200 + Math.floor(Math.random() * 200));
    }
  }
}

/** Every message of the stream, in order: records and commits, read directly by an ordered consumer. */
async function readStream(url: string): Promise<{ seq: number; subject: string; data: Uint8Array; storedAt: number }[]> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info("EVENTS")).state.last_seq;
    const consumer = await jetstream(nc).consumers.get("EVENTS", { deliver_policy: DeliverPolicy.All });
    const out: { seq: number; subject: string; data: Uint8Array; storedAt: number }[] = [];
    if (last === 0) return out;
    for await (const m of await consumer.consume()) {
      out.push({ seq: m.seq, subject: m.subject, data: m.data, storedAt: m.time.getTime() });
      if (m.seq >= last) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;
const sum = (xs: readonly bigint[]): bigint => xs.reduce((a, b) => a + b, 0n);
/** How many times each string occurs. */
const tally = (xs: readonly string[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
};
/** A refusal's message with its ids and numbers left out, to tally refusals by reason. */
const reasonOf = (message: string): string => message.replace(/[\w-]*\d[\w-]*/g, "…").slice(0, 60);
const payoutKey = (p: { readonly recipientId: string; readonly amountCents: bigint; readonly kind: string }): string =>
  `${p.recipientId}:${p.amountCents}:${p.kind}`;

describe("purchases under kill -9", () => {
  it("keeps every batch whole or absent, every wallet non-negative, money conserved, each royalty paid once per sale, each acknowledged command once", async () => {
    const started = Date.now();
    /** What the run did, logged at its end whatever the outcome. */
    const summary: Record<string, unknown> = {};
    try {
      nats = await startTestNats();
      let { server, api } = await startServer(nats.url);
      reader = await connect({ servers: nats.url });
      const store: EventStore = createEventStore({ nc: reader, streamName: "EVENTS", timeoutMs: 5_000 });
      const c0 = clientsOf(api);
      const run = randomUUID().slice(0, 8);
      /** Command ids of the set-up, all acknowledged. */
      const setupIds = new Set<string>();
      const meta = (actor: string) => {
        const commandId = randomUUID();
        setupIds.add(commandId);
        return { commandId, actor };
      };

      // 12 parties, each with a wallet: a few rich, most modest, three that can hardly pay for anything.
      const deposits = [60_000n, 40_000n, 30_000n, 25_000n, 20_000n, 15_000n, 10_000n, 8_000n, 5_000n, 1_500n, 600n, 300n];
      const parties = deposits.map((_, i) => `p${i}-${run}`);
      const walletOf = new Map(parties.map((p, i) => [p, `w${i}-${run}`]));
      const wallet = (party: string): string => walletOf.get(party) ?? `none-${party}`;
      let setupWithdrawn = 0n;
      for (const [i, party] of parties.entries()) {
        await c0.wallet.openWallet({ metadata: meta(party), walletId: wallet(party), ownerId: party });
        await c0.wallet.deposit({ metadata: meta(party), walletId: wallet(party), amountCents: deposits[i] ?? 0n });
        if (i % 4 === 1) {
          await c0.wallet.withdraw({ metadata: meta(party), walletId: wallet(party), amountCents: 1_234n });
          setupWithdrawn += 1_234n;
        }
      }
      // 8 artworks by 3 artists, each with a split of 2 or 3 wallets that overlap: the curator's and the
      // foundation's across artworks, the artist's own, and some buyers'. Prices that do not divide evenly.
      const [curator = "", foundation = ""] = [parties[3], parties[4]];
      const splits = new Map<string, RoyaltyShare[]>();
      const artworks: string[] = [];
      const prices = [1_000n, 1_333n, 2_500n, 999n, 4_001n, 1_750n, 3_217n, 1_111n];
      for (let i = 0; i < 8; i++) {
        const artworkId = `art${i}-${run}`;
        const artist = parties[i % 3] ?? "";
        const buyer = wallet(parties[5 + (i % 4)] ?? "");
        const split: RoyaltyShare[] = [
          [
            { recipientId: wallet(curator), basisPoints: 333 + i },
            { recipientId: wallet(foundation), basisPoints: 1_250 },
          ],
          [
            { recipientId: wallet(artist), basisPoints: 777 },
            { recipientId: wallet(curator), basisPoints: 500 },
            { recipientId: buyer, basisPoints: 251 },
          ],
          [
            { recipientId: wallet(foundation), basisPoints: 999 },
            { recipientId: buyer, basisPoints: 1_001 },
          ],
          [
            { recipientId: buyer, basisPoints: 125 },
            { recipientId: wallet(artist), basisPoints: 2_000 },
            { recipientId: wallet(foundation), basisPoints: 333 },
          ],
        ][i % 4] ?? [];
        splits.set(artworkId, split);
        await c0.artwork.mintArtwork({ metadata: meta(artist), artworkId, artistId: artist, title: `work ${i}`, contentHash: `sha256:${i}`, royaltySplit: split });
        await c0.artwork.listForSale({ metadata: meta(artist), artworkId, priceCents: prices[i] ?? 1n, payoutWalletId: wallet(artist) });
        artworks.push(artworkId);
      }
      // One more whose split names a wallet nobody opened: every purchase of it is refused NOT_FOUND.
      const orphan = `orphan-${run}`;
      const orphanArtist = parties[0] ?? "";
      splits.set(orphan, [
        { recipientId: wallet(curator), basisPoints: 1_000 },
        { recipientId: `nobody-${run}`, basisPoints: 500 },
      ]);
      await c0.artwork.mintArtwork({ metadata: meta(orphanArtist), artworkId: orphan, artistId: orphanArtist, title: "orphan", contentHash: "sha256:o", royaltySplit: splits.get(orphan) ?? [] });
      await c0.artwork.listForSale({ metadata: meta(orphanArtist), artworkId: orphan, priceCents: 700n, payoutWalletId: wallet(orphanArtist) });
      const allArtworks = [...artworks, orphan];
      const setupDone = Date.now();

      // The callers' view of each artwork, read from the stream and folded by the domain, a few commits at a time.
      const views = new Map<string, { seq: number; version: number; state: ArtworkState }>();
      const artworkView = async (artworkId: string): Promise<{ seq: number; version: number; state: ArtworkState }> => {
        const known = views.get(artworkId) ?? { seq: 0, version: 0, state: artworkDecider.initialState };
        let { seq, version, state } = known;
        for (const commit of await store.readAggregate(`ev.artwork.${artworkId}`, { afterSeq: seq })) {
          for (const record of commit.events) state = artworkDecider.evolve(state, decodeArtworkEvent(record));
          seq = commit.seq;
          version++;
        }
        const latest = views.get(artworkId);
        if (latest !== undefined && latest.seq >= seq) return latest;
        const view = { seq, version, state };
        views.set(artworkId, view);
        return view;
      };

      const sent: Tracked[] = [];
      const transientCodes = new Map<string, number>();
      const currentApi = (): string => api;
      let running = true;
      /** Purchases in flight, by artwork. */
      const buying = new Map<string, number>();
      /** One caller's next command, made from the artwork's state as last read: stale states are refused. */
      const nextCommand = async (artworkId: string, owned: boolean): Promise<Tracked | undefined> => {
        const { version, state } = await artworkView(artworkId);
        if (state.status !== "Active") return undefined;
        const owner = state.ownerId;
        const metadata = (actor: string) => ({ commandId: randomUUID(), actor });
        const r = Math.random();
        if (state.listing === null) {
          // Mostly the caller that just bought or transferred it relists it; now and then another (a stale view).
          if (!owned && r > 0.25) return undefined;
          // The owner relists it, to be paid into the owner's wallet, at a price that callers with the same view
          // agree on: a second such listing changes nothing.
          const priceCents = 500n + ((BigInt(version) * 7_919n + BigInt(allArtworks.indexOf(artworkId)) * 131n) % 3_500n);
          return { kind: "list", request: { metadata: metadata(owner), artworkId, priceCents, payoutWalletId: wallet(owner) }, failures: 0 };
        }
        if (r < 0.04) {
          const newOwnerId = pick(parties.filter((p) => p !== owner));
          return { kind: "transfer", request: { metadata: metadata(owner), artworkId, newOwnerId }, failures: 0 };
        }
        if (r < 0.08) {
          const party = pick(parties);
          const amountCents = BigInt(50 + Math.floor(Math.random() * 400));
          return { kind: "withdraw", request: { metadata: metadata(party), walletId: wallet(party), amountCents }, failures: 0 };
        }
        // Three buyers at a time compete for one listing; more would only be refused, and slow the others down.
        if ((buying.get(artworkId) ?? 0) >= 3) return undefined;
        buying.set(artworkId, (buying.get(artworkId) ?? 0) + 1);
        const buyerId = pick(parties.filter((p) => p !== owner));
        const request = {
          metadata: metadata(buyerId),
          purchaseId: `pur-${randomUUID()}`,
          artworkId,
          buyerId,
          buyerWalletId: wallet(buyerId),
          priceCents: state.listing.priceCents,
        };
        return { kind: "buy", request, failures: 0 };
      };
      const caller = async (): Promise<void> => {
        // A caller that bought or transferred an artwork acts on it next: it relists it, for its new owner.
        let next: string | undefined;
        while (running) {
          let s: Tracked | undefined;
          try {
            s = await nextCommand(next ?? (Math.random() < 0.03 ? orphan : pick(artworks)), next !== undefined);
            next = undefined;
          } catch {
            s = undefined; // the test's own read of the stream failed: another turn
          }
          if (s !== undefined) {
            sent.push(s);
            try {
              await settle(s, currentApi, 25, transientCodes);
            } finally {
              if (s.kind === "buy") buying.set(s.request.artworkId, (buying.get(s.request.artworkId) ?? 1) - 1);
            }
            if ((s.kind === "buy" || s.kind === "transfer") && s.answer !== undefined) {
              next = s.request.artworkId;
              continue;
            }
          }
          // A caller thinks a little between commands: 64 of them keep the server's queue full, not overflowing.
          await sleep(Math.random() * 500);
        }
      };
      const callers = Array.from({ length: 64 }, () => caller());

      // Five kill -9 of the API server at random moments under load, each followed by a restart.
      const kills: { at: number; acknowledgedBefore: number }[] = [];
      const answered = (): number => sent.filter((s) => s.answer !== undefined).length;
      /** The load has reached every case the checks below are about (on a busy machine that takes longer). */
      const covered = (): boolean => {
        const done = (kind: Sent["kind"]) => sent.filter((s) => s.kind === kind && s.answer !== undefined).length;
        const refusedBuys = sent.filter((s) => s.kind === "buy" && s.refused !== undefined);
        return (
          done("buy") >= 10 &&
          done("transfer") >= 5 &&
          done("list") >= 10 &&
          refusedBuys.some((s) => s.refused?.message.includes("insufficient funds")) &&
          refusedBuys.some((s) => s.refused?.code === Code.NotFound)
        );
      };
      try {
        for (let kill = 0; kill < 5; kill++) {
          // Each server is killed at a random moment once it has answered a few commands of its own.
          const before = answered();
          const upAt = Date.now();
          while (answered() < before + 3 && Date.now() - upAt < 20_000) await sleep(100);
          await sleep(Math.floor(Math.random() * 1_000));
          kills.push({ at: Date.now() - setupDone, acknowledgedBefore: answered() });
          server.signalGroup("SIGKILL");
          await server.killAll();
          ({ server, api } = await startServer(nats.url));
        }
        // Then the load goes on until it has reached every case, for 60 s at most.
        const until = Date.now() + 60_000;
        do await sleep(1_000);
        while (!covered() && Date.now() < until);
      } finally {
        running = false;
        await Promise.all(callers);
      }
      const loadDone = Date.now();

      // Every command neither answered nor refused is sent again with its id until it is one or the other.
      await Promise.all(sent.filter((s) => s.answer === undefined && s.refused === undefined).map((s) => settle(s, currentApi, 20, transientCodes)));
      expect(sent.filter((s) => s.answer === undefined && s.refused === undefined).map(commandIdOf), "commands never settled").toEqual([]);
      const unexpected = sent.filter((s) => s.refused !== undefined && !refusals.has(s.refused.code));
      expect(unexpected.map((s) => `${s.kind}: ${Code[s.refused?.code ?? 0]} ${s.refused?.message ?? ""}`), "unexpected refusals").toEqual([]);

      const acknowledged = sent.filter((s) => s.answer !== undefined);
      const refused = sent.filter((s) => s.refused !== undefined);
      const buys = sent.filter((s): s is Tracked & { kind: "buy" } => s.kind === "buy");
      const boughtOk = buys.filter((s) => s.answer !== undefined);
      const boughtRefused = buys.filter((s) => s.refused !== undefined);
      const count = (xs: readonly Tracked[]): Record<string, number> => tally(xs.map((x) => x.kind));
      Object.assign(summary, {
        setupMs: setupDone - started,
        loadMs: loadDone - setupDone,
        killsAtMs: kills.map((k) => k.at),
        bootsMs: boots,
        sent: sent.length,
        acknowledged: { total: acknowledged.length, ...count(acknowledged) },
        refused: { total: refused.length, ...count(refused) },
        purchases: { completed: boughtOk.length, refused: boughtRefused.length },
        purchaseRefusals: tally(boughtRefused.map((x) => `${Code[x.refused?.code ?? 0]}: ${reasonOf(x.refused?.message ?? "")}`)),
        callsThatMetAKill: Object.fromEntries(transientCodes),
        acknowledgedAfterAKill: count(acknowledged.filter((x) => x.failures > 0)),
      });
      // The load reached every case, so that the checks below mean something.
      expect(kills).toHaveLength(5);
      // Each server but the first was killed after it had answered commands.
      kills.forEach((k, i) => {
        if (i > 0) expect(k.acknowledgedBefore, `answers before kill ${i + 1}`).toBeGreaterThan(kills[i - 1]?.acknowledgedBefore ?? 0);
      });
      expect(boughtOk.length, "completed purchases").toBeGreaterThanOrEqual(10);
      expect(boughtRefused.filter((s) => s.refused?.message.includes("insufficient funds")).length, "purchases refused for funds").toBeGreaterThan(0);
      expect(boughtRefused.filter((s) => s.refused?.code === Code.NotFound).length, "purchases of the orphan refused").toBeGreaterThan(0);
      expect(acknowledged.filter((s) => s.kind === "transfer").length, "transfers").toBeGreaterThanOrEqual(5);
      expect(acknowledged.filter((s) => s.kind === "list").length, "listings").toBeGreaterThanOrEqual(10);
      expect(sent.filter((s) => s.failures > 0).length, "commands that met a kill").toBeGreaterThan(0);

      // The stream, read directly: records and commits.
      const messages = await readStream(nats.url);
      const bySeq = new Map(messages.map((m) => [m.seq, m]));
      const records = new Map<string, { seq: number; commits: number; position: number; storedAt: number }>();
      const commitsOf = new Map<string, number[]>();
      /** Each aggregate's commits' versions, in stream order. */
      const versionsOf = new Map<string, number[]>();
      const other: string[] = [];
      for (const m of messages) {
        if (m.subject.startsWith("cmd.")) {
          const id = m.subject.slice(4);
          expect(records.has(id), `two records of ${id}`).toBe(false);
          const record = decodeRecord(m.data);
          records.set(id, { seq: m.seq, commits: record.commits, position: record.position, storedAt: m.storedAt });
        } else if (m.subject.startsWith("ev.")) {
          const { commandId: id, aggregateVersion } = decodeCommit(m.data).metadata;
          commitsOf.set(id, [...(commitsOf.get(id) ?? []), m.seq]);
          versionsOf.set(m.subject, [...(versionsOf.get(m.subject) ?? []), aggregateVersion]);
        } else {
          other.push(m.subject);
        }
      }
      expect(other, "messages neither records nor commits").toEqual([]);
      // Whole or absent: each record is followed immediately by exactly its commits, consecutive, with its command
      // id; and every commit has its record.
      for (const [id, record] of records) {
        expect(commitsOf.get(id) ?? [], `the commits of ${id}`).toEqual(Array.from({ length: record.commits }, (_, i) => record.seq + 1 + i));
      }
      for (const id of commitsOf.keys()) expect(records.has(id), `a commit of ${id} without its record`).toBe(true);
      // No aggregate lost or repeated a commit: its versions run 1, 2, 3… in stream order.
      for (const [subject, versions] of versionsOf) {
        expect(versions, `the versions of ${subject}`).toEqual(Array.from({ length: versions.length }, (_, i) => i + 1));
      }
      // The stream holds a record of exactly the commands acknowledged: the set-up's and the load's, each once.
      // A refused command left nothing.
      const ackIds = new Set(acknowledged.map(commandIdOf));
      expect(ackIds.size).toBe(acknowledged.length);
      for (const s of refused) expect(records.has(commandIdOf(s)), `a record of refused ${s.kind} ${commandIdOf(s)}: ${s.refused?.message ?? ""}`).toBe(false);
      expect([...records.keys()].filter((id) => !ackIds.has(id) && !setupIds.has(id)), "records of commands nobody was told of").toEqual([]);
      for (const id of [...setupIds, ...ackIds]) expect(records.has(id), `the record of acknowledged ${id}`).toBe(true);

      // The whole marketplace as the domain folds it from the stream.
      const m = await marketplaceFromStream(store);
      const subjectAt = (seq: number): string => bySeq.get(seq)?.subject ?? "";
      // Each acknowledged command is where its answer says.
      for (const s of acknowledged) {
        const id = commandIdOf(s);
        const record = records.get(id) ?? { seq: 0, commits: -1, position: 0, storedAt: 0 };
        const result = s.answer?.result;
        const batch = Array.from({ length: record.commits }, (_, i) => subjectAt(record.seq + 1 + i));
        if (s.kind === "buy") {
          const { purchaseId, artworkId, buyerWalletId } = s.request;
          const sales = m.sales.filter((x) => x.purchaseId === purchaseId);
          expect(sales, `the sale of acknowledged purchase ${purchaseId}`).toHaveLength(1);
          const sale = sales[0];
          // The artwork, the buyer's wallet, each payee's wallet in the order paid, then the purchase: one commit each.
          const expected = [...new Set([`ev.artwork.${artworkId}`, `ev.wallet.${buyerWalletId}`, ...(sale?.payouts ?? []).map((p) => `ev.wallet.${p.recipientId}`)]), `ev.purchase.${purchaseId}`];
          expect(batch, `the batch of purchase ${purchaseId}`).toEqual(expected);
          expect(result?.aggregateId).toBe(purchaseId);
          expect(Number(result?.position), `the position answered for ${purchaseId}`).toBe(record.seq + record.commits);
          expect(result?.version).toBe(1n);
          expect(m.purchases.get(purchaseId)?.status).toBe("Completed");
          expect(sale).toMatchObject({ artworkId, buyerId: s.request.buyerId, priceCents: s.request.priceCents });
        } else if (record.commits === 0) {
          // Changed nothing (a listing already so): it answers the aggregate's last commit.
          expect(s.kind, `${s.kind} ${id} changed nothing`).toBe("list");
          expect(Number(result?.position)).toBe(record.position);
        } else {
          const subject = s.kind === "withdraw" ? `ev.wallet.${s.request.walletId}` : `ev.artwork.${s.request.artworkId}`;
          expect(batch, `the batch of ${s.kind} ${id}`).toEqual([subject]);
          expect(Number(result?.position)).toBe(record.seq + 1);
        }
      }
      for (const s of boughtRefused) expect(m.purchases.has(s.request.purchaseId), `refused purchase ${s.request.purchaseId}`).toBe(false);

      // Money: no wallet negative, nothing left reserved, deposits − withdrawals = balances, to the cent; no payout
      // opened a wallet.
      expect([...m.wallets.keys()].sort()).toEqual([...walletOf.values()].sort());
      for (const [walletId, w] of m.wallets) {
        if (w.status !== "Open") throw new Error(`wallet ${walletId} is ${w.status}`);
        expect(w.balanceCents, `the balance of ${walletId}`).toBeGreaterThanOrEqual(0n);
        expect(w.reservedCents, `reserved in ${walletId}`).toBe(0n);
        expect(Object.values(w.reservations).filter((r) => r.status !== "Settled"), `open reservations of ${walletId}`).toEqual([]);
      }
      const balances = sum([...m.wallets.values()].map((w) => (w.status === "Open" ? w.balanceCents : 0n)));
      expect(m.deposited).toBe(sum(deposits));
      expect(m.withdrawn).toBe(setupWithdrawn + sum(acknowledged.flatMap((s) => (s.kind === "withdraw" ? [s.request.amountCents] : []))));
      expect(balances).toBe(m.deposited - m.withdrawn);

      // Sales: each pays exactly its payouts, once each, adding up to the price: every royalty of the artwork's
      // split, rounded down, and the rest to the seller's wallet. No payment but a sale's.
      expect(m.sales.filter((x) => x.artworkId === orphan), "sales of the orphan").toEqual([]);
      expect(new Set(m.sales.map((x) => x.purchaseId)).size).toBe(m.sales.length);
      for (const sale of m.sales) {
        const due: Payout[] = [];
        for (const { recipientId, basisPoints } of splits.get(sale.artworkId) ?? []) {
          const amountCents = (sale.priceCents * BigInt(basisPoints)) / 10_000n;
          if (amountCents > 0n) due.push({ recipientId, amountCents, kind: "Royalty" });
        }
        const proceeds = sale.priceCents - sum(due.map((p) => p.amountCents));
        if (proceeds > 0n) due.push({ recipientId: wallet(sale.sellerId), amountCents: proceeds, kind: "SaleProceeds" });
        expect(sale.payouts.map(payoutKey), `the payouts of ${sale.purchaseId}`).toEqual(due.map(payoutKey));
        expect(sum(sale.payouts.map((p) => p.amountCents))).toBe(sale.priceCents);
        const paid = m.payments.filter((p) => p.purchaseId === sale.purchaseId);
        expect(paid.map((p) => payoutKey({ ...p, recipientId: p.walletId })).sort(), `the payments of ${sale.purchaseId}`).toEqual(due.map(payoutKey).sort());
        expect(paid.every((p) => p.artworkId === sale.artworkId)).toBe(true);
      }
      expect(m.payments.length, "payments of no sale").toBe(m.sales.reduce((n, x) => n + x.payouts.length, 0));
      // Every purchase in the stream is completed, with one sale, and was acknowledged.
      expect([...m.purchases.keys()].sort()).toEqual(boughtOk.map((s) => s.request.purchaseId).sort());
      expect(m.sales.length).toBe(m.purchases.size);
      for (const [purchaseId, p] of m.purchases) expect(p.status, `purchase ${purchaseId}`).toBe("Completed");
      // The buyer paid each completed purchase's price once, under its id, from the wallet it named.
      for (const s of boughtOk) {
        const w = m.wallets.get(s.request.buyerWalletId);
        const reservation = w?.status === "Open" ? w.reservations[s.request.purchaseId] : undefined;
        expect(reservation, `the reservation of ${s.request.purchaseId}`).toMatchObject({ status: "Settled", amountCents: s.request.priceCents });
      }
      const reservationsOfPurchases = [...m.wallets.values()].flatMap((w) => (w.status === "Open" ? Object.keys(w.reservations) : []));
      expect(reservationsOfPurchases.sort()).toEqual(boughtOk.map((x) => x.request.purchaseId).sort());

      // Each artwork changed hands from its owner at the time, sale by sale and transfer by transfer.
      for (const artworkId of allArtworks) {
        let owner = "";
        for (const commit of await store.readAggregate(`ev.artwork.${artworkId}`)) {
          for (const record of commit.events) {
            const e = decodeArtworkEvent(record);
            if (e.type === "ArtworkMinted") owner = e.artistId;
            if (e.type === "ArtworkSold") expect(e.sellerId, `a sale of ${artworkId} at ${commit.seq}`).toBe(owner);
            if (e.type === "OwnershipTransferred") {
              expect(e.fromOwnerId, `a transfer of ${artworkId} at ${commit.seq}`).toBe(owner);
              owner = e.toOwnerId;
            }
          }
        }
        const state = m.artworks.get(artworkId);
        expect(state?.status === "Active" ? state.ownerId : "").toBe(owner);
      }

      // Commands whose batch a killed server stored but whose answer it never sent: a later server answered them
      // from their record.
      const answeredFromRecord = acknowledged.filter((x) => x.failures > 0 && (records.get(commandIdOf(x))?.storedAt ?? Infinity) < (x.lastCallAt ?? 0));
      summary.answeredFromRecordAfterAKill = count(answeredFromRecord);
      const repeats = [...new Set([...acknowledged.filter((_, i) => i % 8 === 0), ...answeredFromRecord])];
      summary.repeats = repeats.length;
      // A repeat of an acknowledged command, on the last server, answers byte for byte what it answered first,
      // and appends nothing: those, and one in eight of the others.
      await Promise.all(
        repeats.map(async (s) => {
          const again: Tracked = { ...s, failures: 0 };
          delete again.answer;
          await settle(again, currentApi, 10, transientCodes);
          expect(again.refused, `the repeat of ${s.kind} ${commandIdOf(s)}`).toBeUndefined();
          expect(again.answer, `the repeat of ${s.kind} ${commandIdOf(s)}`).toBeDefined();
          expect(answerBytes(again).equals(answerBytes(s)), `the repeat of ${s.kind} ${commandIdOf(s)}`).toBe(true);
        }),
      );
      expect((await readStream(nats.url)).length).toBe(messages.length);
      summary.totalMs = Date.now() - started;
    } finally {
      console.log(`purchase kills: ${JSON.stringify(summary)}`);
    }
  }, 180_000);
});
