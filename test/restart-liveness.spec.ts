// Read models stay live across a nats-server restart under load: once NATS is back, every projector (SQLite and
// KV), in the API server's process or in a worker of its own, follows the stream to its head again within
// seconds while the commands go on.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import Database from "better-sqlite3";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { marketplaceBucket } from "../projections/read-models/artwork-kv.js";
import { clients, startTestApp, type Clients } from "./harness/app.js";
import { startTestNats, type TestNats } from "./harness/nats.js";
import { killProjectorWorkers, startProjectorWorker } from "./harness/projector-worker.js";
import { openWallets } from "./harness/wallets.js";

const dirs: string[] = [];
const closing: (() => Promise<void>)[] = [];
afterEach(async () => {
  killProjectorWorkers();
  for (const close of closing.splice(0).reverse()) await close();
});
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** nats-server and foldline with `env`, closed after the test. */
async function start(env: (dir: string) => Record<string, string>): Promise<{ nats: TestNats; app: App; c: Clients; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), "foldline-restart-"));
  dirs.push(dir);
  const nats = await startTestNats();
  closing.push(() => nats.stop());
  const app = await startTestApp(nats, env(dir));
  closing.push(() => app.close());
  return { nats, app, c: clients(app.url), dir };
}

/** Deposits and withdrawals on `wallets` from 16 concurrent callers until `running()` is false. */
async function load(c: Clients, wallets: readonly string[], running: () => boolean): Promise<void> {
  const caller = async (n: number): Promise<void> => {
    for (let i = 0; running(); i++) {
      const walletId = wallets[(n + i) % wallets.length] ?? "";
      const metadata = { commandId: randomUUID() };
      try {
        if (i % 3 === 2) await c.wallet.withdraw({ metadata, walletId, amountCents: 1n });
        else await c.wallet.deposit({ metadata, walletId, amountCents: 2n });
      } catch {
        await sleep(20); // UNAVAILABLE while NATS is away, or a refusal: the load goes on
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, (_, n) => caller(n)));
}

/**
 * Kills nats-server under load, restarts it 3 s later, and requires `positions()` (every projector's) to reach the
 * head read once NATS answers within 5 s, and a later head within 5 s again, the load going on throughout.
 */
async function restartUnderLoad(
  { nats, app, c }: { nats: TestNats; app: App; c: Clients },
  positions: () => Promise<Record<string, number>>,
): Promise<void> {
  const wallets = await openWallets(c, 16, "restart");
  let running = true;
  const traffic = load(c, wallets, () => running);
  const reaches = async (target: number): Promise<void> => {
    const since = Date.now();
    let seen = await positions().catch(() => ({}));
    while (Object.values(seen).some((p) => p < target) && Date.now() - since < 5_000) {
      await sleep(50);
      seen = await positions().catch(() => seen);
    }
    expect(Object.values(seen).length).toBeGreaterThan(0);
    for (const [projector, position] of Object.entries(seen)) expect(position, `${projector} at the head ${target}`).toBeGreaterThanOrEqual(target);
  };
  try {
    await sleep(1_500);
    await nats.kill();
    await sleep(3_000);
    await nats.restart();
    let head = 0;
    while (head === 0) head = await app.streams.store.head().catch(() => 0);
    await reaches(head);
    await sleep(2_000);
    await reaches(await app.streams.store.head());
  } finally {
    running = false;
    await traffic;
  }
}

describe("after a nats-server restart under load", () => {
  it("the projectors of the API server reach the head within 5 s of recovery while commands go on", async () => {
    const bed = await start((dir) => ({ PROJECTORS: "embedded", READ_MODEL_DB: join(dir, "read-models.sqlite") }));
    const { app } = bed;
    await restartUnderLoad(bed, () => {
      const seen: Record<string, number> = {};
      for (const p of app.projectors) seen[p.status().projection] = p.status().position;
      for (const p of app.kvProjectors) seen[`kv:${p.status().projection}`] = p.status().position;
      return Promise.resolve(seen);
    });
    for (const p of app.projectors) expect(p.status().state).toBe("running");
    for (const p of app.kvProjectors) expect(p.status().state).toBe("running");
  });

  it("the projectors of a worker reach the head within 5 s of recovery while commands go on", async () => {
    const bed = await start(() => ({}));
    const database = join(bed.dir, "worker.sqlite");
    startProjectorWorker({ NATS_URL: bed.nats.url, DATA_DIR: bed.dir, READ_MODEL_DB: database, NATS_TIMEOUT_MS: "2000" });
    const kv = await new Kvm(jetstream(bed.app.streams.nc, { timeout: 2_000 })).open(marketplaceBucket.name);
    let db: Database.Database | undefined;
    closing.push(() => {
      db?.close();
      return Promise.resolve();
    });
    const positions = async (): Promise<Record<string, number>> => {
      db ??= new Database(database, { readonly: true, fileMustExist: true });
      const seen: Record<string, number> = {};
      for (const row of db.prepare<[], { projection: string; position: number }>("SELECT projection, position FROM projection_checkpoints").all()) {
        seen[row.projection] = row.position;
      }
      const checkpoint = await kv.get("checkpoint.artworks");
      seen["kv:artworks"] = checkpoint === null ? 0 : checkpoint.json<{ position: number }>().position;
      return seen;
    };
    // The worker is projecting before the fault.
    const started = Date.now();
    while (Object.keys(await positions().catch(() => ({}))).length < 4 && Date.now() - started < 20_000) await sleep(100);
    await restartUnderLoad(bed, positions);
  });
});
