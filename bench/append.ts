/**
 * The append suite: how many commits per second `EventStore.append` stores, compared with plain JetStream
 * publishes on the same server, connection and stream.
 *
 * What is measured
 * - `append.concurrent`: 64 appenders, each on its own aggregate subject (`ev.bench.<runId>-<i>`), each looping
 *   `store.append(subject, [one ~100-byte event], { commandId: random UUID, expectedSeq: <its previous seq> })`, so
 *   every append is a real optimistic-concurrency commit with de-duplication by command id. Commits/s.
 * - `append.single`: the same with one appender, each append awaited before the next: the rate a single
 *   aggregate (or a strictly sequential caller) can reach, i.e. the inverse of one round trip. Commits/s.
 * - `append.latency.p50` / `append.latency.p99`: the latency of those single, unloaded appends, in ms, pooled
 *   over the measured rounds. (At 64 appenders latency is mostly queueing, concurrency / rate, which the
 *   throughput figure already tells.)
 *
 * The baseline, and why it is fair
 * Each figure's baseline is the same loop with the raw client underneath the store: `js.publish(subject,
 * payload)` from `jetstream(streams.nc)`, awaited the same way, at the same concurrency, on distinct subjects
 * (`ev.raw.<runId>-<i>`) of the same file-backed stream, through the same connection to the same server. Its
 * payload has exactly the byte length of an encoded commit, so the server writes and acknowledges as many
 * bytes. It sends no headers of its own (the client still frames it as HPUB with an empty header block, the
 * minimum it ever sends). What separates the two is therefore exactly what foldline adds to a publish: building
 * and encoding the commit (protobuf, command id, timestamp), the `Nats-Msg-Id`, `Nats-Expected-Stream` and
 * `Nats-Expected-Last-Subject-Sequence` headers, and the server's duplicate-window and last-sequence checks
 * they trigger. `ratio` = value / baseline is the share of the raw capacity that survives those guarantees
 * (for latencies, how many times longer an append takes).
 *
 * Noise
 * The machine has two cores, shared by this process and the server, so figures drift over a run (the stream
 * grows, the duplicate window fills, the CPU's clock and other tenants vary). Both paths are warmed up first
 * (~1 s in all), then baseline and candidate rounds alternate (B, A, B, A, B, A, ~3 s each), so drift hits
 * both alike, and the median round of each side is reported; the rounds are printed as extra fields.
 * `BENCH_ROUNDS` and `BENCH_ROUND_MS` override the number and length of the rounds.
 *
 * The suite starts its own nats-server in a temporary folder and removes it afterwards, whatever happens.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { randomUUID } from "node:crypto";
import { encodeCommit, type EventRecord } from "../streams/commit-codec.js";
import { loadStreamsConfig } from "../streams/config.js";
import type { EventStore } from "../streams/event-store.js";
import { startNatsServer, type NatsServerProcess } from "../streams/nats-server.js";
import { openStreams, type OpenStreams } from "../streams/open-streams.js";
import { drive, envInt, median, percentile, round, sorted, type Op } from "./measure.js";
import type { Emit } from "./run.js";

const concurrency = 64;
const warmupMs = 1_000;
const rounds = envInt("BENCH_ROUNDS", 3);
const roundMs = envInt("BENCH_ROUND_MS", 3_000);
const eventPayloadBytes = 100;

/** Runs the suite, emitting append.concurrent, append.single and append.latency.p50/p99. */
export async function run(emit: Emit): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "foldline-bench-"));
  let server: NatsServerProcess | undefined;
  let streams: OpenStreams | undefined;
  try {
    log(`starting nats-server in ${dir}`);
    server = await startNatsServer({ storeDir: join(dir, "nats"), logFile: join(dir, "nats-server.log") });
    streams = await openStreams(loadStreamsConfig({ NATS_URL: server.url }));
    log(`nats-server ${streams.serverVersion} at ${server.url}`);
    await measure(streams, emit);
  } finally {
    try {
      await streams?.close();
    } finally {
      try {
        await server?.stop();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  }
}

async function measure(streams: OpenStreams, emit: Emit): Promise<void> {
  const { store } = streams;
  const js = jetstream(streams.nc);
  const runId = Date.now().toString(36);
  const event: EventRecord = {
    type: "bench.Appended",
    schemaVersion: 1,
    payload: new Uint8Array(eventPayloadBytes).fill(0x61),
  };
  // What the store writes for one event, so that the raw publish carries as many bytes.
  const commitBytes = encodeCommit({
    events: [event],
    metadata: { commandId: randomUUID(), actor: "", correlationId: "", causationId: "", recordedAt: new Date(), aggregateVersion: 1 },
  }).length;
  const rawPayload = new Uint8Array(commitBytes).fill(0x61);
  log(`event payload ${eventPayloadBytes} B, encoded commit ${commitBytes} B`);

  // Workers are numbered across the suite, so every one has a subject of its own: 0..63 concurrent, 64 single.
  const appenders = (n: number, first: number): Op[] =>
    Array.from({ length: n }, (_, i) => appender(store, `ev.bench.${runId}-${first + i}`, event));
  const publishers = (n: number, first: number): Op[] =>
    Array.from({ length: n }, (_, i) => {
      const subject = `ev.raw.${runId}-${first + i}`;
      return async () => {
        await js.publish(subject, rawPayload);
      };
    });

  const settings = { roundMs, payloadBytes: commitBytes };

  const concurrent = await compare(`${concurrency} appenders`, publishers(concurrency, 0), appenders(concurrency, 0));
  emit({
    bench: "append.concurrent",
    value: round(concurrent.candidate, 1),
    unit: "commits/s",
    baseline: round(concurrent.baseline, 1),
    ratio: round(concurrent.candidate / concurrent.baseline, 3),
    extra: {
      concurrency,
      rounds: concurrent.candidateRounds.map((r) => round(r, 1)),
      baselineRounds: concurrent.baselineRounds.map((r) => round(r, 1)),
      samples: concurrent.candidateOps,
      ...settings,
    },
  });

  const single = await compare("1 appender", publishers(1, concurrency), appenders(1, concurrency), true);
  emit({
    bench: "append.single",
    value: round(single.candidate, 1),
    unit: "commits/s",
    baseline: round(single.baseline, 1),
    ratio: round(single.candidate / single.baseline, 3),
    extra: {
      concurrency: 1,
      rounds: single.candidateRounds.map((r) => round(r, 1)),
      baselineRounds: single.baselineRounds.map((r) => round(r, 1)),
      samples: single.candidateOps,
      ...settings,
    },
  });

  const candidateLatencies = sorted(single.candidateLatencies);
  const baselineLatencies = sorted(single.baselineLatencies);
  for (const p of [50, 99]) {
    const value = percentile(candidateLatencies, p);
    const baseline = percentile(baselineLatencies, p);
    emit({
      bench: `append.latency.p${p}`,
      value: round(value, 3),
      unit: "ms",
      baseline: round(baseline, 3),
      ratio: round(value / baseline, 3),
      extra: { concurrency: 1, samples: candidateLatencies.length, baselineSamples: baselineLatencies.length },
    });
  }
}

/** An appender on its own subject: each call appends one commit, expecting its previous one to be the last. */
function appender(store: EventStore, subject: string, event: EventRecord): Op {
  let seq = 0;
  return async () => {
    const result = await store.append(subject, [event], { commandId: randomUUID(), expectedSeq: seq });
    if (result.duplicate) throw new Error(`append to ${subject} was taken for a duplicate`);
    seq = result.seq;
  };
}

interface Comparison {
  /** Median rate of the candidate's rounds, per second. */
  readonly candidate: number;
  /** Median rate of the baseline's rounds, per second. */
  readonly baseline: number;
  readonly candidateRounds: readonly number[];
  readonly baselineRounds: readonly number[];
  /** Operations completed in the candidate's measured rounds. */
  readonly candidateOps: number;
  /** Per-operation latencies in ms, when asked for. */
  readonly candidateLatencies: readonly number[];
  readonly baselineLatencies: readonly number[];
}

/**
 * Warms both workloads up, then alternates baseline and candidate rounds and returns the median of each side.
 * With `latencies`, the measured rounds also record every operation's latency.
 */
async function compare(label: string, baseline: readonly Op[], candidate: readonly Op[], latencies = false): Promise<Comparison> {
  log(`${label}: warming up`);
  await drive(baseline, warmupMs / 2);
  await drive(candidate, warmupMs / 2);
  const baselineRounds: number[] = [];
  const candidateRounds: number[] = [];
  const baselineLatencies: number[] = [];
  const candidateLatencies: number[] = [];
  let candidateOps = 0;
  for (let r = 1; r <= rounds; r++) {
    const b = await drive(baseline, roundMs, latencies ? baselineLatencies : undefined);
    baselineRounds.push(b.rate);
    log(`${label}: round ${r}/${rounds} raw publish ${b.rate.toFixed(0)} msgs/s`);
    const a = await drive(candidate, roundMs, latencies ? candidateLatencies : undefined);
    candidateRounds.push(a.rate);
    candidateOps += a.ops;
    log(`${label}: round ${r}/${rounds} append      ${a.rate.toFixed(0)} commits/s`);
  }
  return {
    candidate: median(candidateRounds),
    baseline: median(baselineRounds),
    candidateRounds,
    baselineRounds,
    candidateOps,
    candidateLatencies,
    baselineLatencies,
  };
}

function log(message: string): void {
  process.stderr.write(`append: ${message}\n`);
}
