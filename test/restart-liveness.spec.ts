// Read models stay live across a nats-server restart under load: once NATS is back, every projector (SQLite and
// KV) follows the stream to its head again within seconds while the commands go on, and status says so.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { clients, startTestApp, type Clients } from "./harness/app.js";
import { startTestNats, type TestNats } from "./harness/nats.js";
import { openWallets } from "./harness/wallets.js";

let nats: TestNats;
let app: App;
let c: Clients;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "foldline-restart-"));
  nats = await startTestNats();
  app = await startTestApp(nats, { PROJECTORS: "embedded", READ_MODEL_DB: join(dir, "read-models.sqlite") });
  c = clients(app.url);
});
afterAll(async () => {
  await app.close();
  await nats.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Deposits and withdrawals on `wallets` from `callers` concurrent callers until `running()` is false. */
async function load(wallets: readonly string[], callers: number, running: () => boolean): Promise<number> {
  let answered = 0;
  const caller = async (n: number): Promise<void> => {
    for (let i = 0; running(); i++) {
      const walletId = wallets[(n + i) % wallets.length] ?? "";
      const metadata = { commandId: randomUUID() };
      try {
        if (i % 3 === 2) await c.wallet.withdraw({ metadata, walletId, amountCents: 1n });
        else await c.wallet.deposit({ metadata, walletId, amountCents: 2n });
        answered++;
      } catch {
        await sleep(20); // UNAVAILABLE while NATS is away, or a refusal: the load goes on
      }
    }
  };
  await Promise.all(Array.from({ length: callers }, (_, n) => caller(n)));
  return answered;
}

describe("after a nats-server restart under load", () => {
  it("every projector reaches the head within 5 s of recovery while commands go on", async () => {
    const wallets = await openWallets(c, 16, "restart");
    let running = true;
    const traffic = load(wallets, 16, () => running);
    try {
      await sleep(1_500);
      await nats.kill();
      await sleep(3_000);
      await nats.restart();
      // The head once NATS answers again: what the projectors must reach while the load goes on.
      let head = 0;
      const recovered = Date.now();
      while (head === 0) head = await app.streams.store.head().catch(() => 0);
      const caughtUp = (target: number): boolean => {
        const sqlite = app.projectors.every((p) => p.status().position >= target);
        const kv = app.kvProjectors.every((p) => p.status().position >= target);
        return sqlite && kv;
      };
      while (!(caughtUp(head)) && Date.now() - recovered < 5_000) await sleep(20);
      const statuses = { sqlite: app.projectors.map((p) => p.status()), kv: app.kvProjectors.map((p) => p.status()) };
      expect(caughtUp(head), `head ${head}: ${JSON.stringify(statuses)}`).toBe(true);
      // And they keep following: a later head is reached as well, the load still going.
      await sleep(2_000);
      const later = await app.streams.store.head();
      const again = Date.now();
      while (!(caughtUp(later)) && Date.now() - again < 5_000) await sleep(20);
      expect(caughtUp(later)).toBe(true);
      for (const p of app.projectors) expect(p.status().state).toBe("running");
    } finally {
      running = false;
      await traffic;
    }
  });
});
