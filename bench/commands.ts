/**
 * The commands suite: what foldline's command path costs over the wire, against the raw operations beneath it,
 * on one foldline process and one nats-server that the suite starts for itself.
 *
 * What is measured
 * - `commands.unary`: Deposit commands per second through `WalletService/Deposit` over gRPC (h2c), 64 calls in
 *   flight, each slot on its own wallet, every call with a fresh command id. Extra fields: p50/p99 latency.
 *   Baseline: `grpc.health.v1.Health/Check` on the same server at the same concurrency, a Connect RPC that does
 *   no work, so the ratio is the share of the server's RPC capacity that survives the command path (validation,
 *   idempotency record, decide, append).
 * - `commands.stream`: Deposit commands per second through `CommandService/Execute`, 256 in flight over 4 streams,
 *   on 256 wallets. Baseline: raw `js.publish` of a commit-sized payload at the same concurrency (256 in flight)
 *   from the server's process, on the same stream: the JetStream write every command ends in. Extra field
 *   `emptyRequestsPerSecond`: empty requests through the same RPC, answered at once without touching NATS, the
 *   ceiling of the streaming transport itself on this machine; `pipelineOnlyPerSecond`: the same deposits handed
 *   to the command pipeline in process (no RPC), 256 in flight, the ceiling of the command path itself;
 *   `atomicBatchCommandsPerSecond`: commands per second that raw atomic batches of the pipeline's writes allow
 *   (the record and the commit of `atomicBatchCommands` commands per batch, two batches in flight, as the group
 *   commit sends them), the server's own limit for the way commands are stored, and `atomicBatchRatio` the
 *   commands' rate against it.
 * - `commands.purchase`: atomic BuyArtwork with three royalty recipients, against raw atomic batches of its size;
 *   see purchase.ts.
 * - `commands.deep-aggregate`: p50 latency of one Deposit (one in flight) on a wallet with 10 000 prior commits,
 *   on a server whose aggregate cache is off, so every command loads the wallet: its snapshot and the commits
 *   after it. Baseline: the same on wallets with one prior commit (freshly opened). Extra fields: the same two
 *   figures with the cache on (the default), which is what a steady caller of one aggregate sees.
 *
 * The load comes from `grpc-load.ts`: raw HTTP/2 frames from a child process, cheap enough not to starve the
 * server on two cores (a generated client would measure itself). Baseline and candidate rounds alternate and
 * the median round of each is reported, so drift hits both alike. `BENCH_ROUNDS` and `BENCH_ROUND_MS` override
 * the number and length of the rounds.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { jetstream } from "@nats-io/jetstream";
import { pino } from "pino";
import { startApp, type App } from "../app.js";
import { loadCommandsConfig } from "../commands/config.js";
import { loadProjectionsConfig } from "../projections/config.js";
import { walletType } from "../commands/marketplace/wallet-routes.js";
import { ExecuteRequestSchema } from "../gen/foldline/marketplace/v1/command_service_pb.js";
import { DepositRequestSchema, WalletService } from "../gen/foldline/marketplace/v1/wallet_service_pb.js";
import { HealthCheckRequestSchema } from "../gen/grpc/health/v1/health_pb.js";
import { loadStreamsConfig } from "../streams/config.js";
import { createJsPublisher, type BatchMessage } from "../streams/js-publisher.js";
import { startNatsServer, type NatsServerProcess } from "../streams/nats-server.js";
import { medianRound, runGrpcLoad, type GrpcLoadOptions, type GrpcLoadResult } from "./grpc-load.js";
import { commitSizedPayload } from "./payloads.js";
import { purchase } from "./purchase.js";
import { drive, envInt, percentile, round, sorted, type Op } from "./measure.js";
import type { Emit, Figure } from "./run.js";

const rounds = envInt("BENCH_ROUNDS", 3);
const roundMs = envInt("BENCH_ROUND_MS", 3_000);
const unaryConcurrency = 64;
const streamConcurrency = 256;
const deepCommits = 10_000;
const latencySamples = envInt("BENCH_LATENCY_SAMPLES", 300);
const placeholder = "00000000-0000-4000-8000-000000000000";
const silent = pino({ level: "silent" });

/** Runs the suite, emitting commands.unary, commands.stream, commands.purchase and commands.deep-aggregate. */
export async function run(emit: Emit): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "foldline-bench-"));
  let server: NatsServerProcess | undefined;
  const apps: App[] = [];
  const start = async (env: Record<string, string> = {}): Promise<App> => {
    if (server === undefined) throw new Error("no nats-server");
    const app = await startApp(
      {
        streams: loadStreamsConfig({ NATS_URL: server.url, DATA_DIR: dir }),
        // The server's own settings apply (SNAPSHOT_EVERY, AGGREGATE_CACHE_SIZE, ...), except where a figure needs its own.
        commands: loadCommandsConfig({ ...process.env, API_PORT: "0", ...env }),
        // The commands figures measure the command path alone.
        projections: loadProjectionsConfig(dir, { PROJECTORS: "separate" }),
      },
      silent,
    );
    apps.push(app);
    return app;
  };
  try {
    log(`starting nats-server in ${dir}`);
    server = await startNatsServer({ storeDir: join(dir, "nats"), logFile: join(dir, "nats-server.log") });
    const app = await start();
    log(`foldline at ${app.url}, nats-server ${app.streams.serverVersion}`);
    await unary(app, emit);
    await streaming(app, emit);
    await purchase(app, emit, { rounds, roundMs, log });
    await deepAggregate(app, await start({ AGGREGATE_CACHE_SIZE: "0" }), emit);
  } finally {
    try {
      for (const app of apps.reverse()) await app.close();
    } finally {
      try {
        await server?.stop();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  }
}

async function unary(app: App, emit: Emit): Promise<void> {
  const wallets = await openWallets(app, unaryConcurrency, "unary");
  const command: GrpcLoadOptions = {
    url: app.url,
    path: "/foldline.marketplace.v1.WalletService/Deposit",
    mode: "unary",
    templates: wallets.map((walletId) => depositBytes(walletId)),
    placeholder,
    concurrency: unaryConcurrency,
    durationMs: roundMs,
  };
  const noop: GrpcLoadOptions = {
    url: app.url,
    path: "/grpc.health.v1.Health/Check",
    mode: "unary",
    templates: [toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema))],
    concurrency: unaryConcurrency,
    durationMs: roundMs,
  };
  const rounds = await alternate("unary", () => runGrpcLoad(noop), () => runGrpcLoad(command));
  emit(rateFigure("commands.unary", rounds, { baselineP50Ms: round(medianRound(rounds.baseline).p50Ms, 3), concurrency: unaryConcurrency }));
}

async function streaming(app: App, emit: Emit): Promise<void> {
  const wallets = await openWallets(app, streamConcurrency, "stream");
  const command: GrpcLoadOptions = {
    url: app.url,
    path: "/foldline.marketplace.v1.CommandService/Execute",
    mode: "stream",
    templates: wallets.map((walletId) =>
      toBinary(ExecuteRequestSchema, create(ExecuteRequestSchema, { command: { case: "deposit", value: deposit(walletId) } })),
    ),
    placeholder,
    concurrency: streamConcurrency,
    streams: 4,
    durationMs: roundMs,
    errorField: 20,
  };
  // The raw write underneath: a commit-sized publish on the same stream, as many in flight.
  const js = jetstream(app.streams.nc);
  const payload = commitSizedPayload();
  const runId = Date.now().toString(36);
  const publishers: Op[] = Array.from({ length: streamConcurrency }, (_, i) => async () => {
    await js.publish(`ev.raw.${runId}-${i}`, payload);
  });
  const raw = async (): Promise<GrpcLoadResult> => {
    await drive(publishers, 1_000);
    const { ops, rate } = await drive(publishers, roundMs);
    return { completed: ops, errors: 0, durationMs: roundMs, perSecond: rate, p50Ms: Number.NaN, p99Ms: Number.NaN, clientCpuMs: 0 };
  };
  const rounds = await alternate("stream", raw, () => runGrpcLoad(command));
  // The RPC's own ceiling: empty ExecuteRequests, each answered at once with an invalid_argument error, so that
  // the figure can be read against what the streaming transport alone allows on this machine.
  const empty = await runGrpcLoad({ ...command, templates: [new Uint8Array(0)], placeholder: undefined });
  const ceiling = (empty.completed + empty.errors) / (empty.durationMs / 1_000);
  log(`stream: empty requests answered ${ceiling.toFixed(0)}/s`);
  // The command path without any RPC: the same deposits handed to the pipeline in process, as many in flight,
  // so that the figure can be read against what the pipeline alone (idempotency record, decide, append) allows.
  const request = depositBytes("");
  const direct: Op[] = wallets.map((walletId) => async () => {
    const command = { type: "Deposit" as const, walletId, amountCents: 1n };
    await app.pipeline.execute(walletType, {
      aggregateId: walletId,
      command,
      commandId: randomUUID(),
      actor: "",
      correlationId: "",
      causationId: "",
      requestType: DepositRequestSchema.typeName,
      request,
    });
  });
  await drive(direct, 1_000);
  const pipelineOnly = (await drive(direct, roundMs)).rate;
  log(`stream: the pipeline alone ${pipelineOnly.toFixed(0)}/s`);
  // The server's own limit for the writes the pipeline makes: raw atomic batches, two in flight as the group
  // commit sends them, each of the record and the commit of half the commands in flight (each record on a
  // subject of its own, guarded by expected sequence 0 as the pipeline's are).
  const perBatch = streamConcurrency / 2;
  const batchPublisher = createJsPublisher(app.streams.nc, 10_000);
  let sent = 0;
  const atomic: Op[] = [0, 1].map((slot) => async () => {
    const batch = sent++;
    await batchPublisher.publishBatch(
      Array.from({ length: perBatch }, (_, k): BatchMessage[] => [
        { subject: `cmd.raw-${runId}-${batch}-${k}`, data: payload.subarray(0, 64), guards: { expectedLastSubjectSeq: 0 } },
        { subject: `ev.raw.${runId}-${slot}-${k}`, data: payload },
      ]).flat(),
    );
  });
  let atomicBatches: number;
  try {
    await drive(atomic, 1_000);
    atomicBatches = (await drive(atomic, roundMs)).rate;
  } finally {
    batchPublisher.close();
  }
  const atomicCeiling = atomicBatches * perBatch;
  log(`stream: raw atomic batches of ${perBatch} commands ${atomicCeiling.toFixed(0)} commands/s`);
  emit(
    rateFigure("commands.stream", rounds, {
      concurrency: streamConcurrency,
      streams: 4,
      emptyRequestsPerSecond: round(ceiling, 1),
      pipelineOnlyPerSecond: round(pipelineOnly, 1),
      atomicBatchCommandsPerSecond: round(atomicCeiling, 1),
      atomicBatchRatio: round(medianRound(rounds.candidate).perSecond / atomicCeiling, 3),
      atomicBatchCommands: perBatch,
    }),
  );
}

/** A commands/s figure from alternated rounds: the median rounds, their latencies, every round's rate. */
function rateFigure(
  bench: string,
  { candidate, baseline }: { candidate: GrpcLoadResult[]; baseline: GrpcLoadResult[] },
  extra: Record<string, unknown>,
): Figure {
  const mid = medianRound(candidate);
  const base = medianRound(baseline);
  return {
    bench,
    value: round(mid.perSecond, 1),
    unit: "commands/s",
    baseline: round(base.perSecond, 1),
    ratio: round(mid.perSecond / base.perSecond, 3),
    extra: {
      p50Ms: round(mid.p50Ms, 3),
      p99Ms: round(mid.p99Ms, 3),
      ...extra,
      rounds: candidate.map((r) => round(r.perSecond, 1)),
      baselineRounds: baseline.map((r) => round(r.perSecond, 1)),
      errors: sum(candidate, (r) => r.errors),
      clientCpuShare: round(sum(candidate, (r) => r.clientCpuMs) / sum(candidate, (r) => r.durationMs), 3),
      roundMs,
    },
  };
}

async function deepAggregate(warm: App, cold: App, emit: Emit): Promise<void> {
  const [deepId] = await openWallets(warm, 1, "deep");
  if (deepId === undefined) throw new Error("no wallet");
  log(`deep: appending ${deepCommits} commits`);
  for (let i = 1; i < deepCommits; i++) {
    const commandId = randomUUID();
    await warm.pipeline.execute(walletType, {
      aggregateId: deepId,
      command: { type: "Deposit", walletId: deepId, amountCents: 1n },
      commandId,
      actor: "",
      correlationId: "",
      causationId: "",
      requestType: DepositRequestSchema.typeName,
      request: depositBytes(deepId, commandId),
    });
  }
  const freshIds = await openWallets(warm, latencySamples * 2, "fresh");
  let nextFresh = 0;
  const clientsByApp = new Map([warm, cold].map((app) => [app, createClient(WalletService, createGrpcTransport({ baseUrl: app.url }))]));
  const latency = async (app: App, walletId: () => string): Promise<number> => {
    const client = clientsByApp.get(app);
    if (client === undefined) throw new Error("no client");
    const t0 = performance.now();
    await client.deposit(deposit(walletId(), randomUUID()));
    return performance.now() - t0;
  };
  const sample = async (app: App, walletId: () => string, n: number, into: number[]): Promise<void> => {
    for (let i = 0; i < n; i++) into.push(await latency(app, walletId));
  };
  const fresh = (): string => freshIds[nextFresh++ % freshIds.length] ?? "";
  const deep = (): string => deepId;

  const figures: Record<string, { deep: number[]; fresh: number[] }> = { cold: { deep: [], fresh: [] }, warm: { deep: [], fresh: [] } };
  for (const [name, app] of [["cold", cold], ["warm", warm]] as const) {
    const f = figures[name] ?? { deep: [], fresh: [] };
    await sample(app, deep, 20, []); // warm-up: connections, JIT, the cache when it is on
    await sample(app, fresh, 20, []);
    const block = Math.max(1, Math.floor(latencySamples / 5));
    for (let done = 0; done < latencySamples; done += block) {
      await sample(app, fresh, block, f.fresh);
      await sample(app, deep, block, f.deep);
    }
    log(`deep: ${name} p50 deep ${percentile(sorted(f.deep), 50).toFixed(3)} ms, fresh ${percentile(sorted(f.fresh), 50).toFixed(3)} ms`);
  }
  const p = (values: readonly number[], q: number): number => round(percentile(sorted(values), q), 3);
  const { cold: c, warm: w } = figures as Record<"cold" | "warm", { deep: number[]; fresh: number[] }>;
  emit({
    bench: "commands.deep-aggregate",
    value: p(c.deep, 50),
    unit: "ms",
    baseline: p(c.fresh, 50),
    ratio: round(p(c.deep, 50) / p(c.fresh, 50), 3),
    extra: {
      priorCommits: deepCommits,
      cache: "off",
      p99Ms: p(c.deep, 99),
      baselineP99Ms: p(c.fresh, 99),
      warmP50Ms: p(w.deep, 50),
      warmBaselineP50Ms: p(w.fresh, 50),
      warmRatio: round(p(w.deep, 50) / p(w.fresh, 50), 3),
      snapshotEvery: loadCommandsConfig(process.env).snapshotEvery,
      samples: c.deep.length,
      commitsReadPerColdLoad: round(cold.pipeline.stats.commitsRead / Math.max(1, cold.pipeline.stats.loads), 2),
    },
  });
}

/** Opens `n` wallets and returns their ids. */
async function openWallets(app: App, n: number, label: string): Promise<string[]> {
  const client = createClient(WalletService, createGrpcTransport({ baseUrl: app.url }));
  const ids = Array.from({ length: n }, (_, i) => `bench-${label}-${i}-${randomUUID().slice(0, 8)}`);
  for (let i = 0; i < ids.length; i += 64) {
    await Promise.all(
      ids.slice(i, i + 64).map((walletId) => client.openWallet({ metadata: { commandId: randomUUID() }, walletId, ownerId: "bench" })),
    );
  }
  return ids;
}

function deposit(walletId: string, commandId = placeholder) {
  return create(DepositRequestSchema, { metadata: { commandId }, walletId, amountCents: 1n });
}

function depositBytes(walletId: string, commandId = placeholder): Uint8Array {
  return toBinary(DepositRequestSchema, deposit(walletId, commandId));
}

/** Warms both sides up once, then alternates baseline and candidate rounds. */
async function alternate(
  label: string,
  baselineRound: () => Promise<GrpcLoadResult>,
  candidateRound: () => Promise<GrpcLoadResult>,
): Promise<{ candidate: GrpcLoadResult[]; baseline: GrpcLoadResult[] }> {
  const candidate: GrpcLoadResult[] = [];
  const baseline: GrpcLoadResult[] = [];
  for (let r = 1; r <= rounds; r++) {
    const b = await baselineRound();
    baseline.push(b);
    log(`${label}: round ${r}/${rounds} baseline ${b.perSecond.toFixed(0)}/s`);
    const a = await candidateRound();
    candidate.push(a);
    log(`${label}: round ${r}/${rounds} commands ${a.perSecond.toFixed(0)}/s, p50 ${a.p50Ms.toFixed(2)} ms, errors ${a.errors}${a.firstError === undefined ? "" : ` (${a.firstError})`}`);
    if (a.completed === 0) throw new Error(`${label}: no command succeeded: ${a.firstError ?? "no answer"}`);
  }
  return { candidate, baseline };
}

function sum(results: readonly GrpcLoadResult[], f: (r: GrpcLoadResult) => number): number {
  return results.reduce((total, r) => total + f(r), 0);
}

function log(message: string): void {
  process.stderr.write(`commands: ${message}\n`);
}
