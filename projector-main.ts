// `npm run projector`: a worker running a projector per read model for the NATS servers named by NATS_URL, until
// SIGINT, SIGTERM or SIGHUP. Workers sharing a read-model file elect one writer through a lease; the others stand by.
// The writer also answers the admin requests (status, rebuild, diff) on NATS.
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { pino } from "pino";
import { loadCommandsConfig } from "./commands/config.js";
import { openCommandPipeline } from "./commands/open-pipeline.js";
import { loadProjectionsConfig } from "./projections/config.js";
import { createKvProjector } from "./projections/kv-projector.js";
import { createLease, leaseOwner } from "./projections/lease.js";
import { serveProjectionAdmin, type AdminResponder } from "./projections/admin-nats.js";
import { purchaseProcess } from "./projections/processes/purchase-process.js";
import { startReactor } from "./projections/reactor.js";
import { createProjectionHost, type ProjectionHost } from "./projections/projection-host.js";
import { openReadModelDb } from "./projections/read-model-db.js";
import { readModels } from "./projections/read-models/all.js";
import { artworkKvProjection, marketplaceBucket } from "./projections/read-models/artwork-kv.js";
import { exitOnceLogged, firstStopSignal } from "./process-lifecycle.js";
import { ConfigError, loadStreamsConfig } from "./streams/config.js";
import { openStreams } from "./streams/open-streams.js";
import { leasesBucket } from "./streams/topology.js";

const log = pino({ name: "foldline-projector" });
const stopRequested = firstStopSignal(log, "stopping");

async function main(): Promise<void> {
  const streamsConfig = loadStreamsConfig();
  if (streamsConfig.natsUrl === undefined) {
    throw new ConfigError("NATS_URL must name the NATS servers of the foldline whose stream this worker projects");
  }
  const config = loadProjectionsConfig(streamsConfig.dataDir);
  const file = resolve(config.databaseFile);
  mkdirSync(dirname(file), { recursive: true });
  const streams = await openStreams(streamsConfig, [marketplaceBucket]);
  const kvm = new Kvm(jetstream(streams.nc, { timeout: streamsConfig.timeoutMs }));
  const leases = await kvm.open(leasesBucket);
  const owner = leaseOwner();
  // KV read models are one for the whole system: their projector takes a lease of its own.
  const kvProjector = createKvProjector({
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
  const pipeline = await openCommandPipeline(streams, kvm, loadCommandsConfig(), log);
  const purchases = await startReactor({
    kvm,
    store: streams.store,
    reaction: purchaseProcess({ store: streams.store, pipeline }),
    ttlMs: config.leaseTtlMs,
    log,
  });
  const lease = createLease({
    kv: leases,
    key: `projector-${createHash("sha256").update(file).digest("hex").slice(0, 32)}`,
    owner,
    ttlMs: config.leaseTtlMs,
    log,
  });
  const stopping = new AbortController();
  const db = openReadModelDb(file);
  let host: ProjectionHost | undefined;
  let responder: AdminResponder | undefined;
  let lost: (() => void) | undefined;
  lease.onLost(() => lost?.());

  const stop = (): void => {
    stopping.abort();
    void (async () => {
      await responder?.close();
      await Promise.all([host?.stop(), kvProjector.stop(), purchases.stop()]);
      await pipeline.close();
      await lease.release();
      db.close();
      await streams.close();
      log.info({ projectors: host?.projectors().map((p) => p.status()) }, "stopped");
      exitOnceLogged(log, 0);
    })();
  };
  void stopRequested.then(stop);

  // Stand by until the lease is ours, project until it is lost, stand by again.
  while (!stopping.signal.aborted) {
    log.info({ database: file }, "standing by for the projector lease");
    try {
      await lease.acquire(stopping.signal);
    } catch {
      return; // stopping
    }
    const current = (host = createProjectionHost({
      store: streams.store,
      file,
      db,
      projections: readModels,
      kvProjectors: [kvProjector],
      reactors: [purchases],
      log,
      batchSize: config.batchSize,
    }));
    current.start();
    responder = serveProjectionAdmin(streams.nc, current, log);
    log.info({ database: file, projectors: current.projectors().map((p) => p.status()) }, "projecting");
    await new Promise<void>((done) => {
      lost = done;
      stopping.signal.addEventListener("abort", () => {
        done();
      }, { once: true });
    });
    // Lost the lease (or stopping): no more admin answers, rebuilds under way cancelled, projectors stopped.
    await responder.close();
    await current.stop();
  }
}

main().catch((err: unknown) => {
  log.fatal({ err }, "projector could not start");
  process.exitCode = 1;
});
