import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { DepositResponseSchema, type DepositResponse } from "../gen/foldline/marketplace/v1/wallet_service_pb.js";
import { clients, startTestApp } from "./harness/app.js";
import { startTestNats, type TestNats } from "./harness/nats.js";

const duplicateWindowMs = 1_000;
let nats: TestNats;
let app: App;
let other: App;

beforeAll(async () => {
  nats = await startTestNats();
  const env = { EVENT_STREAM_DUPLICATE_WINDOW_MS: String(duplicateWindowMs) };
  app = await startTestApp(nats, env);
  other = await startTestApp(nats, env);
});
afterAll(async () => {
  // nats-server is stopped even when foldline never started (setup failed) or fails to close.
  try {
    await other.close();
    await app.close();
  } finally {
    await nats.stop();
  }
});

const bytes = (res: DepositResponse): Buffer => Buffer.from(toBinary(DepositResponseSchema, res));

async function openWallet(): Promise<string> {
  const walletId = `w-${randomUUID()}`;
  await clients(app.url).wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId, ownerId: "ada" });
  return walletId;
}

async function commitsOf(commandId: string): Promise<number> {
  let n = 0;
  for await (const commit of app.streams.store.readAll()) if (commit.metadata.commandId === commandId) n++;
  return n;
}

describe("idempotent commands", () => {
  it("answers a command id sent twice at once, and again after the duplicate window, with one commit", async () => {
    const walletId = await openWallet();
    const request = { metadata: { commandId: randomUUID(), correlationId: "c-1" }, walletId, amountCents: 250n };
    const { wallet } = clients(app.url);
    const [one, two] = await Promise.all([wallet.deposit(request), wallet.deposit(request)]);
    expect(bytes(two).equals(bytes(one))).toBe(true);
    expect(one.result?.version).toBe(2n);

    await sleep(duplicateWindowMs * 1.5); // the stream no longer knows the Nats-Msg-Id
    const later = await wallet.deposit(request);
    const elsewhere = await clients(other.url, "connect").wallet.deposit(request); // a server that never saw it
    expect(bytes(later).equals(bytes(one))).toBe(true);
    expect(bytes(elsewhere).equals(bytes(one))).toBe(true);
    // The record travelled in the commit's batch, just before it.
    const record = await app.streams.store.readRecord(request.metadata.commandId);
    expect(record?.seq).toBe(Number(one.result?.position) - 1);
    expect(JSON.parse(Buffer.from(record?.data ?? []).toString())).toMatchObject({ commits: 1 });
    expect(await commitsOf(request.metadata.commandId)).toBe(1);

    // The wallet holds the money once: the next deposit is version 3.
    const next = await wallet.deposit({ metadata: { commandId: randomUUID() }, walletId, amountCents: 1n });
    expect(next.result?.version).toBe(3n);
  });

  it("refuses a command id reused for a different request, and appends nothing", async () => {
    const walletId = await openWallet();
    const { wallet } = clients(app.url);
    const commandId = randomUUID();
    await wallet.deposit({ metadata: { commandId }, walletId, amountCents: 100n });
    const head = await app.streams.store.head();
    await expect(wallet.deposit({ metadata: { commandId }, walletId, amountCents: 101n })).rejects.toMatchObject({
      code: Code.AlreadyExists,
      rawMessage: `command id ${commandId} was already used for a different request`,
    });
    await expect(clients(other.url).wallet.withdraw({ metadata: { commandId }, walletId, amountCents: 100n })).rejects.toMatchObject({
      code: Code.AlreadyExists,
    });
    expect(await app.streams.store.head()).toBe(head);
  });

  it("lets a refused command be sent again with the same id once the reason is gone", async () => {
    const walletId = await openWallet();
    const { wallet } = clients(app.url);
    const request = { metadata: { commandId: randomUUID() }, walletId, amountCents: 70n };
    await expect(wallet.withdraw(request)).rejects.toMatchObject({ code: Code.FailedPrecondition });
    await wallet.deposit({ metadata: { commandId: randomUUID() }, walletId, amountCents: 100n });
    const res = await wallet.withdraw(request);
    expect(res.result?.version).toBe(3n);
    expect(await clients(other.url).wallet.withdraw(request)).toEqual(res);
    expect(await commitsOf(request.metadata.commandId)).toBe(1);
  });

  it("answers a repeat of a command that changed nothing the same way", async () => {
    const walletId = await openWallet();
    const { wallet } = clients(app.url);
    await wallet.deposit({ metadata: { commandId: randomUUID() }, walletId, amountCents: 10n });
    await wallet.reserveFunds({ metadata: { commandId: randomUUID() }, walletId, reservationId: "r-1", amountCents: 5n });
    // Reserving the same reservation again changes nothing: an empty answer at the current version.
    const request = { metadata: { commandId: randomUUID() }, walletId, reservationId: "r-1", amountCents: 5n };
    const first = await wallet.reserveFunds(request);
    expect(first.events).toEqual([]);
    expect(first.result?.version).toBe(3n);
    await wallet.deposit({ metadata: { commandId: randomUUID() }, walletId, amountCents: 1n });
    const repeat = await clients(other.url).wallet.reserveFunds(request);
    expect(repeat).toEqual(first);
  });
});
