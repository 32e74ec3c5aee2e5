import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { decodeWalletEvent } from "../commands/marketplace/wallet-events.js";
import { clients, startTestApp } from "./harness/app.js";
import { startTestNats, type TestNats } from "./harness/nats.js";

let nats: TestNats;
let first: App;
let second: App;

beforeAll(async () => {
  nats = await startTestNats();
  // Two processes' worth of foldline on one NATS: their caches and per-aggregate queues are separate, so the
  // stream's optimistic concurrency is all that keeps them apart.
  first = await startTestApp(nats);
  second = await startTestApp(nats);
});
afterAll(async () => {
  // nats-server is stopped even when foldline never started (setup failed) or fails to close.
  try {
    await second.close();
    await first.close();
  } finally {
    await nats.stop();
  }
});

const metadata = () => ({ commandId: randomUUID(), actor: "contention-test" });

describe("contention on one wallet", () => {
  it("64 concurrent withdrawals through two servers never overdraw and none is lost", async () => {
    const a = clients(first.url);
    const b = clients(second.url);
    const walletId = `w-${randomUUID()}`;
    await a.wallet.openWallet({ metadata: metadata(), walletId, ownerId: "ada" });
    await a.wallet.deposit({ metadata: metadata(), walletId, amountCents: 1_000n });
    // Both servers have loaded the wallet before the rush, so both start from a cached state.
    await b.wallet.deposit({ metadata: metadata(), walletId, amountCents: 1n });

    const amount = 30n;
    const attempts = Array.from({ length: 64 }, (_, i) => {
      const commandId = randomUUID();
      const client = i % 2 === 0 ? a : b;
      return client.wallet.withdraw({ metadata: { commandId }, walletId, amountCents: amount }).then(
        (res) => ({ commandId, ok: true as const, version: res.result?.version, position: res.result?.position }),
        (err: unknown) => ({ commandId, ok: false as const, code: ConnectError.from(err).code, message: ConnectError.from(err).rawMessage }),
      );
    });
    const outcomes = await Promise.all(attempts);

    const refused = outcomes.filter((o) => !o.ok);
    for (const r of refused) expect([Code.FailedPrecondition, Code.Aborted], `${r.code}: ${r.message}`).toContain(r.code);
    const accepted = outcomes.filter((o) => o.ok);
    // 1001 cents hold 33 withdrawals of 30. A withdrawal may also give up (Aborted) after losing its retries to
    // the other server; it is then not in the stream, and leaves its money in the wallet.
    expect(accepted.length).toBeLessThanOrEqual(33);
    expect(accepted.length).toBeGreaterThan(0);
    expect(new Set(accepted.map((o) => o.version)).size).toBe(accepted.length);

    // The stream is the truth: replay the wallet and compare.
    const commits = await first.streams.store.readAggregate(`ev.wallet.${walletId}`);
    let balance = 0n;
    let withdrawn = 0;
    for (const commit of commits) {
      for (const record of commit.events) {
        const event = decodeWalletEvent(record);
        if (event.type === "FundsDeposited") balance += event.amountCents;
        if (event.type === "FundsWithdrawn") {
          balance -= event.amountCents;
          withdrawn++;
        }
        expect(balance).toBeGreaterThanOrEqual(0n);
      }
    }
    expect(withdrawn).toBe(accepted.length);
    expect(balance).toBe(1_001n - amount * BigInt(accepted.length));
    // A withdrawal refused for want of funds means the wallet had less than the amount left, and never more later.
    if (refused.some((r) => r.code === Code.FailedPrecondition)) expect(balance).toBeLessThan(amount);
    const committed = commits.map((c) => c.metadata.commandId);
    for (const o of accepted) expect(committed.filter((id) => id === o.commandId)).toHaveLength(1);
    for (const o of refused) expect(committed).not.toContain(o.commandId);
    expect(commits.map((c) => c.metadata.aggregateVersion)).toEqual(commits.map((_, i) => i + 1));

    // Both servers agree on what is left.
    for (const client of [a, b]) {
      await expect(client.wallet.withdraw({ metadata: metadata(), walletId, amountCents: balance + 1n })).rejects.toMatchObject({
        code: Code.FailedPrecondition,
        rawMessage: `insufficient funds: available ${balance}, requested ${balance + 1n}`,
      });
    }
  });
});
