// `npm run projector`: a worker running a projector per read model for the NATS servers named by NATS_URL, until
// SIGINT, SIGTERM or SIGHUP. Workers sharing a read-model file elect one writer through a lease; the others stand by.
// The writer also answers the admin requests (status, rebuild, diff) on NATS. A worker that cannot start releases
// what it took and exits with 1.
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { pino, type Logger } from "pino";
import type { CommandPipeline } from "./commands/command-pipeline.js";
import { loadCommandsConfig } from "./commands/config.js";
import { openCommandPipeline } from "./commands/open-pipeline.js";
import { loadProjectionsConfig, type ProjectionsConfig } from "./projections/config.js";
import { createKvProjector, type KvProjector } from "./projections/kv-projector.js";
import { createLease, leaseOwner, type Lease } from "./projections/lease.js";
import { serveProjectionAdmin } from "./projections/admin-nats.js";
import { purchaseProcess } from "./projections/processes/purchase-process.js";
import { startReactor, type Reactor } from "./projections/reactor.js";
import { createProjectionHost, type ProjectionHost } from "./projections/projection-host.js";
import { openReadModelDb, type ReadModelDb } from "./projections/read-model-db.js";
import { readModels } from "./projections/read-models/all.js";
import { artworkKvProjection, marketplaceBucket } from "./projections/read-models/artwork-kv.js";
import { firstStopSignal, runMain } from "./process-lifecycle.js";
import { ConfigError, loadStreamsConfig, type StreamsConfig } from "./streams/config.js";
import { openStreams, type OpenStreams } from "./streams/open-streams.js";
import { leasesBucket } from "./streams/topology.js";

const log = pino({ name: "foldline-projector" });
const stopRequested = firstStopSignal(log, "stopping");

/** What a started worker holds: the connection, the KV projector and process manager (each with a lease), and the
 * lease on the read-model file. */
interface Worker {
  readonly streams: OpenStreams;
  readonly kvProjector: KvProjector;
  readonly purchases: Reactor;
  readonly pipeline: CommandPipeline;
  readonly fileLease: Lease;
  /** Stops everything above and releases the leases; safe after a partial start. */
  stop(): Promise<void>;
}

/**
 * Connects and starts the KV projector and the purchase process manager. Any failure stops what was started (its
 * leases released) and rethrows.
 */
async function startWorker(streamsConfig: StreamsConfig, config: ProjectionsConfig, file: string): Promise<Worker> {
  const streams = await openStreams(streamsConfig, [marketplaceBucket]);
  let kvProjector: KvProjector | undefined;
  let purchases: Reactor | undefined;
  let pipeline: CommandPipeline | undefined;
  let fileLease: Lease | undefined;
  const stop = async (): Promise<void> => {
    await Promise.all([kvProjector?.stop(), purchases?.stop()]);
    await pipeline?.close();
    await fileLease?.release();
    await streams.close();
  };
  try {
    const kvm = new Kvm(jetstream(streams.nc, { timeout: streamsConfig.timeoutMs }));
    const leases = await kvm.open(leasesBucket);
    const owner = leaseOwner();
    // KV read models are one for the whole system: their projector takes a lease of its own.
    kvProjector = createKvProjector({
      store: streams.store,
      kv: await kvm.open(marketplaceBucket.name),
      projection: artworkKvProjection,
      lease: createLease({
        kv: leases,
        key: `kv-projector.${marketplaceBucket.name}.${artworkKvProjection.name}`,
        owner,
        ttlMs: config.leaseTtlMs,
        log,
      }),
      log,
    });
    kvProjector.start();
    // The purchase process manager issues its commands through a pipeline of this worker's own.
    const commands = (pipeline = await openCommandPipeline(streams, kvm, loadCommandsConfig(), log));
    purchases = await startReactor({
      kvm,
      store: streams.store,
      reaction: purchaseProcess({ store: streams.store, pipeline: commands }),
      ttlMs: config.leaseTtlMs,
      log,
    });
    fileLease = createLease({
      kv: leases,
      key: `projector-${createHash("sha256").update(file).digest("hex").slice(0, 32)}`,
      owner,
      ttlMs: config.leaseTtlMs,
      log,
    });
    return { streams, kvProjector, purchases, pipeline, fileLease, stop };
  } catch (err) {
    await stop().catch((stopErr: unknown) => {
      log.error({ err: stopErr }, "could not stop what had started");
    });
    throw err;
  }
}

/**
 * Stands by until the file's lease is ours, projects until it is lost, stands by again; until `stopping` aborts.
 * Returns the host that projected last, for the final status.
 */
async function projectWhileLeader(
  worker: Worker,
  options: { readonly file: string; readonly db: ReadModelDb; readonly batchSize: number; readonly log: Logger },
  stopping: AbortSignal,
): Promise<ProjectionHost | undefined> {
  const { file, db } = options;
  let host: ProjectionHost | undefined;
  let lost: (() => void) | undefined;
  worker.fileLease.onLost(() => lost?.());
  while (!stopping.aborted) {
    options.log.info({ database: file }, "standing by for the projector lease");
    try {
      await worker.fileLease.acquire(stopping);
    } catch {
      break; // stopping
    }
    const current = (host = createProjectionHost({
      store: worker.streams.store,
      file,
      db,
      projections: readModels,
      kvProjectors: [worker.kvProjector],
      reactors: [worker.purchases],
      log: options.log,
      batchSize: options.batchSize,
    }));
    current.start();
    const responder = serveProjectionAdmin(worker.streams.nc, current, options.log);
    options.log.info({ database: file, projectors: current.projectors().map((p) => p.status()) }, "projecting");
    await new Promise<void>((done) => {
      lost = done;
      stopping.addEventListener("abort", () => {
        done();
      }, { once: true });
    });
    // Lost the lease (or stopping): no more admin answers, rebuilds under way cancelled, projectors stopped.
    await responder.close();
    await current.stop();
  }
  return host;
}

/** Starts, projects until a stop signal, stops; answers the exit code. Throws only when it could not start. */
async function main(): Promise<number> {
  const streamsConfig = loadStreamsConfig();
  if (streamsConfig.natsUrl === undefined) {
    throw new ConfigError("NATS_URL must name the NATS servers of the foldline whose stream this worker projects");
  }
  const config = loadProjectionsConfig(streamsConfig.dataDir);
  const file = resolve(config.databaseFile);
  mkdirSync(dirname(file), { recursive: true });
  // Before any lease is taken: a worker that cannot open its file must not hold work that others could do.
  const db = openReadModelDb(file);
  let worker: Worker;
  try {
    worker = await startWorker(streamsConfig, config, file);
  } catch (err) {
    db.close();
    throw err;
  }
  const stopping = new AbortController();
  void stopRequested.then(() => {
    stopping.abort();
  });
  let code = 0;
  let host: ProjectionHost | undefined;
  try {
    host = await projectWhileLeader(worker, { file, db, batchSize: config.batchSize, log }, stopping.signal);
  } catch (err) {
    log.error({ err }, "projector failed; stopping");
    code = 1;
  }
  try {
    await worker.stop();
  } catch (err) {
    log.error({ err }, "stop failed");
    code = 1;
  } finally {
    db.close();
  }
  log.info({ projectors: host?.projectors().map((p) => p.status()) }, "stopped");
  return code;
}

runMain(log, main, "projector could not start");
