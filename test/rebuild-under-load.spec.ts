import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { AdminService } from "../gen/foldline/admin/v1/admin_service_pb.js";
import { SqlService } from "../gen/foldline/analytics/v1/sql_service_pb.js";
import { clients, startTestApp, type Clients } from "./harness/app.js";
import { artworkTraffic } from "./harness/artworks.js";
import { startTestNats, type TestNats } from "./harness/nats.js";
import { killProjectorWorkers, startProjectorWorker } from "./harness/projector-worker.js";
import { until } from "./harness/until.js";
import { openWallets } from "./harness/wallets.js";

let nats: TestNats;
let app: App;
let dir: string;
let c: Clients;

beforeAll(async () => {
  nats = await startTestNats();
  dir = mkdtempSync(join(tmpdir(), "foldline-rebuild-load-"));
  // The projectors, and so the rebuilds, run in a worker process: the API server's queries read the file beside it,
  // from other processes and connections, as they would in production.
  const database = join(dir, "read-models.sqlite");
  startProjectorWorker({ NATS_URL: nats.url, DATA_DIR: dir, READ_MODEL_DB: database, PROJECTOR_LEASE_TTL_MS: "1000" });
  app = await startTestApp(nats, { READ_MODEL_DB: database });
  c = clients(app.url);
});
afterAll(async () => {
  // nats-server is stopped even when foldline never started (setup failed) or fails to close.
  try {
    killProjectorWorkers();
    await app.close();
  } finally {
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Deposits: each one's position and amount, by wallet: a wallet's balance at a position is the sum of those up to it. */
type Deposits = Map<string, { position: number; amount: bigint }[]>;

/** Sends `count` deposits over `wallets`, `concurrency` at a time, recording each in `deposits`. */
async function depositTraffic(wallets: readonly string[], count: number, deposits: Deposits, concurrency = 24): Promise<void> {
  let sent = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < count) {
        const n = sent++;
        const walletId = wallets[n % wallets.length] ?? "";
        const amount = BigInt(1 + (n % 9) * 11);
        const res = await c.wallet.deposit({ metadata: { commandId: randomUUID() }, walletId, amountCents: amount });
        const list = deposits.get(walletId) ?? [];
        list.push({ position: Number(res.result?.position ?? 0n), amount });
        deposits.set(walletId, list);
      }
    }),
  );
}

const balanceAt = (deposits: Deposits, walletId: string, position: number): bigint =>
  (deposits.get(walletId) ?? []).reduce((sum, d) => (d.position <= position ? sum + d.amount : sum), 0n);
const totalAt = (deposits: Deposits, position: number): bigint =>
  [...deposits.keys()].reduce((sum, walletId) => sum + balanceAt(deposits, walletId, position), 0n);

describe("queries during a rebuild", () => {
  it("all succeed and never see a half-built read model", async () => {
    const wallets = await openWallets(c, 40, "load");
    const deposits: Deposits = new Map();
    await Promise.all([depositTraffic(wallets, 3_000, deposits), artworkTraffic(c, "load", 45)]);
    const admin = createClient(AdminService, createGrpcTransport({ baseUrl: app.url }));
    const sql = createClient(SqlService, createGrpcTransport({ baseUrl: app.url }));
    const head = await app.streams.store.head();
    await until(
      "the worker answers admin requests",
      () => admin.getProjectionStatus({}).then(() => true, () => false),
      60_000,
    );

    // What the read models hold before the rebuilds; deposits only from here on, so sums never go down.
    const adaBefore = await c.queries.listArtworks({ filter: { case: "artistId", value: "ada" }, pageSize: 100, minPosition: BigInt(head) });
    expect(adaBefore.artworks.length).toBeGreaterThan(5);
    const totalBefore = totalAt(deposits, head);

    let rebuilding = true;
    const answers = { wallet: 0, sql: 0, list: 0 };
    const failures: string[] = [];
    // Checked once every deposit's answer is in: a deposit may be in the read model before its answer is here.
    const checks: (() => void)[] = [];
    const check = (ok: () => boolean, what: () => string): void => {
      checks.push(() => {
        if (!ok()) failures.push(what());
      });
    };
    const queries = async (worker: number): Promise<void> => {
      for (let n = worker; rebuilding; n += 3) {
        const walletId = wallets[n % wallets.length] ?? "";
        try {
          if (n % 3 === 0) {
            const { wallet, position } = await c.queries.getWallet({ walletId, minPosition: BigInt(head) });
            const expected = (): bigint => balanceAt(deposits, walletId, Number(position));
            check(
              () => wallet?.balanceCents === expected(),
              () => `GetWallet ${walletId} at ${position}: ${wallet?.balanceCents}, expected ${expected()}`,
            );
            answers.wallet++;
          } else if (n % 3 === 1) {
            // One statement, one read transaction: the wallets checkpoint and the rows it covers belong together.
            const res = await sql.query({
              minPosition: BigInt(head),
              // The API server starts its SQL worker processes on demand, which takes a while on a busy machine.
              timeoutMs: 30_000,
              sql: "SELECT (SELECT position FROM projection_checkpoints WHERE projection = 'wallets') AS p, count(*) AS n, sum(balance_cents) AS s FROM wallets",
            });
            const [p, count, sum] = (res.rows[0]?.values ?? []).map((v) => (v.kind.case === "integer" ? v.kind.value : -1n));
            const position = Number(p ?? -1n);
            check(() => count === BigInt(wallets.length), () => `SQL: ${count} wallets at ${position}, expected ${wallets.length}`);
            check(
              () => sum === totalAt(deposits, position),
              () => `SQL: total ${sum} at ${position}, expected ${totalAt(deposits, position)}`,
            );
            check(() => (sum ?? 0n) >= totalBefore, () => `SQL: total ${sum} below ${totalBefore}, the total before the rebuild`);
            answers.sql++;
          } else {
            const res = await c.queries.listArtworks({
              filter: { case: "artistId", value: "ada" },
              pageSize: 100,
              minPosition: BigInt(head),
            });
            check(
              () => res.artworks.length === adaBefore.artworks.length && res.position >= BigInt(head),
              () => `ListArtworks: ${res.artworks.length} artworks at ${res.position}, expected ${adaBefore.artworks.length}`,
            );
            answers.list++;
          }
        } catch (err) {
          failures.push(`query ${n} failed: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    };
    const readers = [0, 1, 2, 3, 4, 5].map(queries);
    const more = depositTraffic(wallets, 1_500, deposits, 8);
    const switched: bigint[] = [];
    try {
      for (let round = 0; round < 3; round++) {
        for (const projection of ["wallets", "artworks"]) {
          switched.push((await admin.rebuildProjection({ projection })).position);
        }
      }
    } finally {
      rebuilding = false;
      await Promise.all(readers);
      await more;
    }
    for (const run of checks) run();
    expect(failures).toEqual([]);
    expect(switched.every((p) => p >= BigInt(head))).toBe(true);
    expect(answers.wallet).toBeGreaterThan(10);
    expect(answers.sql).toBeGreaterThan(10);
    expect(answers.list).toBeGreaterThan(10);

    // And the rebuilt read models are right.
    for (const projection of ["wallets", "artworks"]) {
      expect((await admin.diffProjection({ projection })).identical).toBe(true);
    }
  }, 300_000);
});
