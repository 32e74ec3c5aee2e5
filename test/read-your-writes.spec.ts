import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { clients, startTestApp, startTestBed, type Clients, type TestBed } from "./harness/app.js";
import { type TestNats } from "./harness/nats.js";

let bed: TestBed;
let nats: TestNats;
let app: App;
let c: Clients;
let dir: string;

beforeAll(async () => {
  ({ nats, app, c, dir } = bed = await startTestBed("foldline-ryw-", (dir) => ({ PROJECTORS: "embedded", READ_MODEL_DB: join(dir, "read-models.sqlite") })));
});
afterAll(async () => {
  await bed.close();
});

describe("queries read their own writes", () => {
  it("1 000 command-then-query pairs never see stale data", async () => {
    const loop = async (n: number): Promise<number> => {
      const walletId = `ryw-${n}-${randomUUID().slice(0, 8)}`;
      await c.wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId, ownerId: "ada" });
      let balance = 0n;
      let stale = 0;
      for (let i = 1; i <= 125; i++) {
        const amountCents = BigInt(i);
        const res = await c.wallet.deposit({ metadata: { commandId: randomUUID() }, walletId, amountCents });
        balance += amountCents;
        const minPosition = res.result?.position ?? 0n;
        const view = await c.queries.getWallet({ walletId, minPosition });
        expect(view.position).toBeGreaterThanOrEqual(minPosition);
        if (view.wallet?.balanceCents !== balance || view.wallet.version !== res.result?.version) stale++;
        expect(view.wallet?.lastPosition).toBe(minPosition);
      }
      return stale;
    };
    const stale = await Promise.all(Array.from({ length: 8 }, (_, n) => loop(n)));
    expect(stale).toEqual(Array.from({ length: 8 }, () => 0));
  });

  it("answers the wallet's figures, NOT_FOUND for an unknown wallet, and DEADLINE_EXCEEDED for a position not reached", async () => {
    const walletId = `q-${randomUUID().slice(0, 8)}`;
    await c.wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId, ownerId: "bo" });
    await c.wallet.deposit({ metadata: { commandId: randomUUID() }, walletId, amountCents: 500n });
    const reserved = await c.wallet.reserveFunds({ metadata: { commandId: randomUUID() }, walletId, reservationId: "r", amountCents: 120n });
    const view = await c.queries.getWallet({ walletId, minPosition: reserved.result?.position ?? 0n });
    expect(view.wallet).toMatchObject({ walletId, ownerId: "bo", balanceCents: 500n, reservedCents: 120n, availableCents: 380n, version: 3n });

    await expect(c.queries.getWallet({ walletId: "nobody", minPosition: view.position })).rejects.toMatchObject({
      code: Code.NotFound,
      rawMessage: `wallet nobody does not exist at position ${view.position}`,
    });
    const head = await app.streams.store.head();
    const started = Date.now();
    await expect(c.queries.getWallet({ walletId, minPosition: BigInt(head + 1_000) }, { timeoutMs: 300 })).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
    });
    expect(Date.now() - started).toBeLessThan(3_000);
    await expect(c.queries.getWallet({ walletId: "no such id" })).rejects.toMatchObject({ code: Code.InvalidArgument });
  });

  it("answers UNAVAILABLE when no projector has ever written the read models", async () => {
    await using bare = await startTestApp(nats, { READ_MODEL_DB: join(dir, "never-written.sqlite") });
    await expect(clients(bare.url).queries.getWallet({ walletId: "w" })).rejects.toMatchObject({ code: Code.Unavailable });
  });
});
