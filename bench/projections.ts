/**
 * The projections suite: how fast read models are rebuilt from the stream, and how fresh they are under load.
 *
 * What is measured
 * - `projections.rebuild`: events per second applied when every SQLite read model (wallets, artworks, sales) is
 *   built from sequence 1 into a fresh file, over a stream of 200 000+ commits (`BENCH_REBUILD_COMMITS`) on 2 000
 *   wallets and 200 artworks. Baseline: the lower of (a) reading the same commits with a raw ordered consumer
 *   and doing nothing with them, and (b) raw SQLite upserts, 500 per transaction, into a table of the same
 *   shape: the two things a rebuild is made of, each alone. The three are measured in turn, in 5 rounds
 *   (`BENCH_REBUILD_ROUNDS`), and each is reported by its median.
 * - `projections.freshness`: the p99, in ms, from a Deposit acknowledged to a `GetWallet` query (with the
 *   command's position as `min_position`) answering it, while deposits arrive at half the server's unary command
 *   capacity (measured first, in the same run). The load comes paced from the raw HTTP/2 load generator's
 *   process; the timed deposits and queries come from a probe in this process, one every 20 ms. No baseline: the
 *   target is an absolute 50 ms.
 *
 * The suite starts its own nats-server in a temporary folder and removes it afterwards, whatever happens.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import Database from "better-sqlite3";
import { pino } from "pino";
import { startApp, type App } from "../app.js";
import { loadCommandsConfig } from "../commands/config.js";
import { artworkType } from "../commands/marketplace/artwork-routes.js";
import { walletType } from "../commands/marketplace/wallet-routes.js";
import { QueryService } from "../gen/foldline/marketplace/v1/query_service_pb.js";
import { DepositRequestSchema, WalletService } from "../gen/foldline/marketplace/v1/wallet_service_pb.js";
import { loadProjectionsConfig } from "../projections/config.js";
import { createProjectorGroup } from "../projections/projector.js";
import { openReadModelDb } from "../projections/read-model-db.js";
import { readModels } from "../projections/read-models/all.js";
import { loadStreamsConfig } from "../streams/config.js";
import type { EventRecord } from "../streams/commit-codec.js";
import { startNatsServer, type NatsServerProcess } from "../streams/nats-server.js";
import { runGrpcLoad, type GrpcLoadOptions } from "./grpc-load.js";
import { envInt, median, percentile, round, sorted } from "./measure.js";
import type { Emit } from "./run.js";

const rebuildCommits = envInt("BENCH_REBUILD_COMMITS", 200_000);
const rebuildRounds = envInt("BENCH_REBUILD_ROUNDS", 5);
const freshnessMs = envInt("BENCH_FRESHNESS_MS", 5_000);
const silent = pino({ level: "silent" });

/** Runs the suite, emitting projections.rebuild and projections.freshness. */
export async function run(emit: Emit): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "foldline-bench-"));
  let server: NatsServerProcess | undefined;
  let app: App | undefined;
  try {
    log(`starting nats-server in ${dir}`);
    server = await startNatsServer({ storeDir: join(dir, "nats"), logFile: join(dir, "nats-server.log") });
    const streams = loadStreamsConfig({ NATS_URL: server.url, DATA_DIR: dir });
    app = await startApp(
      {
        streams,
        commands: loadCommandsConfig({ API_PORT: "0" }),
        projections: loadProjectionsConfig(dir, { PROJECTORS: "embedded", READ_MODEL_DB: join(dir, "live.sqlite") }),
      },
      silent,
    );
    await rebuild(app, dir, emit);
    await freshness(app, emit);
  } finally {
    try {
      await app?.close();
    } finally {
      try {
        await server?.stop();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  }
}

async function rebuild(app: App, dir: string, emit: Emit): Promise<void> {
  const { store } = app.streams;
  log(`seeding ${rebuildCommits} commits`);
  const wallets = 2_000;
  const artworks = 200;
  const walletEvent = (e: Parameters<typeof walletType.encodeEvent>[0]): EventRecord => walletType.encodeEvent(e);
  const seeds: (() => Promise<unknown>)[] = [];
  for (let i = 0; i < artworks; i++) {
    const subject = `ev.artwork.bench-${i}`;
    seeds.push(() =>
      store.append(subject, [artworkType.encodeEvent({ type: "ArtworkMinted", artistId: `artist-${i % 20}`, title: `Work ${i}`, contentHash: "sha256:00", royaltySplit: [{ recipientId: `artist-${i % 20}`, basisPoints: 500 }] })], {
        commandId: randomUUID(),
        aggregateVersion: 1,
      }),
    );
  }
  for (let i = 0; i < wallets; i++) {
    seeds.push(() => store.append(`ev.wallet.bench-${i}`, [walletEvent({ type: "WalletOpened", ownerId: `owner-${i}` })], { commandId: randomUUID(), aggregateVersion: 1 }));
  }
  const versions = new Array<number>(wallets).fill(1);
  for (let n = seeds.length; n < rebuildCommits; n++) {
    const w = n % wallets;
    const version = (versions[w] ?? 1) + 1;
    versions[w] = version;
    const subject = `ev.wallet.bench-${w}`;
    seeds.push(() =>
      store.append(subject, [walletEvent({ type: "FundsDeposited", amountCents: 100n }), walletEvent({ type: "FundsWithdrawn", amountCents: 1n })], {
        commandId: randomUUID(),
        aggregateVersion: version,
      }),
    );
  }
  // Opens and mints first, then the rest 256 at a time: each wallet's commits stay in order.
  await Promise.all(seeds.slice(0, artworks + wallets).map((s) => s()));
  for (let i = artworks + wallets; i < seeds.length; i += 256) await Promise.all(seeds.slice(i, i + 256).map((s) => s()));
  const head = await store.head();
  let events = 0;
  for await (const commit of store.readAll()) events += commit.events.length;
  log(`stream holds ${head} commits, ${events} events`);

  // Rounds of the three measures, one after the other, so that the machine's drift during the run (the server's
  // caches warming, other load) weighs on each alike; each is reported by its median.
  const js = jetstream(app.streams.nc);
  const readRates: number[] = [];
  const upsertRates: number[] = [];
  const rates: number[] = [];
  const seconds: number[] = [];
  let batches: number[] = [];
  for (let round = 0; round < rebuildRounds; round++) {
    // Baseline (a): a raw ordered consumer over the same messages, doing nothing with them.
    const readStart = performance.now();
    const consumer = await js.consumers.get("EVENTS", { deliver_policy: DeliverPolicy.All });
    const messages = await consumer.consume({ max_messages: 512 });
    for await (const m of messages) if (m.seq >= head) break;
    readRates.push(events / ((performance.now() - readStart) / 1_000));
    await consumer.delete();
    // Baseline (b): raw batched upserts of as many rows, 500 per transaction.
    upsertRates.push(rawUpserts(join(dir, `raw-${round}.sqlite`), events, wallets));
    // The rebuild: every read model from sequence 1 into a fresh file, by one group of projectors for the read
    // models of the file, as the app runs them.
    const db = openReadModelDb(join(dir, `rebuild-${round}.sqlite`));
    const started = performance.now();
    const group = createProjectorGroup({ store, db, projections: readModels, log: silent });
    const { projectors } = group;
    group.start();
    const reached = await Promise.all(projectors.map((p) => p.waitFor(head, 600_000)));
    const took = (performance.now() - started) / 1_000;
    await group.stop();
    db.close();
    if (reached.includes(false)) throw new Error("the rebuild did not finish");
    // Events of the stream per second turned into every read model.
    rates.push(events / took);
    seconds.push(took);
    batches = projectors.map((p) => p.status().batches);
    log(`round ${round + 1}: ordered consumer ${readRates[round]?.toFixed(0)} events/s, upserts ${upsertRates[round]?.toFixed(0)} rows/s, rebuild ${rates[round]?.toFixed(0)} events/s (${took.toFixed(2)} s)`);
  }
  const rate = median(rates);
  const readRate = median(readRates);
  const upsertRate = median(upsertRates);
  const baseline = Math.min(readRate, upsertRate);
  emit({
    bench: "projections.rebuild",
    value: round(rate, 1),
    unit: "events/s",
    baseline: round(baseline, 1),
    ratio: round(rate / baseline, 3),
    extra: {
      commits: head,
      events,
      readModels: readModels.length,
      seconds: round(median(seconds), 2),
      orderedConsumerEventsPerSecond: round(readRate, 1),
      sqliteUpsertsPerSecond: round(upsertRate, 1),
      rounds: rates.map((r) => round(r, 1)),
      orderedConsumerRounds: readRates.map((r) => round(r, 1)),
      batches,
    },
  });
}

/** Rows per second upserted into a fresh file, 500 per transaction, into a table shaped like `wallets`. */
function rawUpserts(file: string, rows: number, keys: number): number {
  const raw = new Database(file);
  try {
    raw.pragma("journal_mode = WAL");
    raw.pragma("synchronous = NORMAL");
    raw.exec("CREATE TABLE t (id TEXT PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL)");
    const upsert = raw.prepare(
      "INSERT INTO t VALUES (?, 'o', ?, ?, ?) ON CONFLICT (id) DO UPDATE SET balance = balance + excluded.balance, version = excluded.version, position = excluded.position",
    );
    const batch = raw.transaction((from: number) => {
      for (let i = from; i < from + 500; i++) upsert.run(`w-${i % keys}`, 99, i, i);
    });
    const started = performance.now();
    for (let i = 0; i < rows; i += 500) batch(i);
    return rows / ((performance.now() - started) / 1_000);
  } finally {
    raw.close();
  }
}

async function freshness(app: App, emit: Emit): Promise<void> {
  const transport = createGrpcTransport({ baseUrl: app.url });
  const wallet = createClient(WalletService, transport);
  const queries = createClient(QueryService, transport);
  const ids = Array.from({ length: 64 }, (_, i) => `fresh-${i}-${randomUUID().slice(0, 8)}`);
  await Promise.all(ids.map((walletId) => wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId, ownerId: "bench" })));
  const placeholder = "00000000-0000-4000-8000-000000000000";
  const deposits: GrpcLoadOptions = {
    url: app.url,
    path: "/foldline.marketplace.v1.WalletService/Deposit",
    mode: "unary",
    templates: ids.map((walletId) =>
      toBinary(DepositRequestSchema, create(DepositRequestSchema, { metadata: { commandId: placeholder }, walletId, amountCents: 1n })),
    ),
    placeholder,
    concurrency: 64,
    durationMs: 2_000,
  };
  const capacity = await runGrpcLoad(deposits);
  const rate = capacity.perSecond / 2;
  log(`freshness: unary capacity ${capacity.perSecond.toFixed(0)}/s; loading at ${rate.toFixed(0)}/s`);

  // The load, paced at half the capacity, from the load generator's process; beside it, a probe in this process
  // sends a deposit every 20 ms and times, from its acknowledgement, the query that waits for its position.
  const load = runGrpcLoad({ ...deposits, ratePerSecond: rate, durationMs: freshnessMs });
  const probeWallet = `fresh-probe-${randomUUID().slice(0, 8)}`;
  await wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId: probeWallet, ownerId: "bench" });
  await new Promise((resolve) => setTimeout(resolve, 1_000)); // the load generator's warm-up
  const samples: number[] = [];
  for (const end = performance.now() + freshnessMs - 500; performance.now() < end; ) {
    const res = await wallet.deposit({ metadata: { commandId: randomUUID() }, walletId: probeWallet, amountCents: 1n });
    const acked = performance.now();
    await queries.getWallet({ walletId: probeWallet, minPosition: res.result?.position ?? 0n });
    samples.push(performance.now() - acked);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const loaded = await load;
  const s = sorted(samples);
  emit({
    bench: "projections.freshness",
    value: round(percentile(s, 99), 3),
    unit: "ms",
    baseline: null,
    ratio: null,
    extra: {
      p50Ms: round(percentile(s, 50), 3),
      maxMs: round(s[s.length - 1] ?? Number.NaN, 3),
      samples: s.length,
      targetCommandsPerSecond: round(rate, 1),
      loadCommandsPerSecond: round(loaded.perSecond, 1),
      unaryCapacity: round(capacity.perSecond, 1),
    },
  });
}

function log(message: string): void {
  process.stderr.write(`projections: ${message}\n`);
}
