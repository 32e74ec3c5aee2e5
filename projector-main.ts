// `npm run projector`: a worker running a projector per read model for the NATS servers named by NATS_URL, until
// SIGINT/SIGTERM. Workers sharing a read-model file elect one writer through a lease; the others stand by.
import { createHash, randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, resolve } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { pino } from "pino";
import { loadProjectionsConfig } from "./projections/config.js";
import { createKvProjector } from "./projections/kv-projector.js";
import { createLease } from "./projections/lease.js";
import { createProjectorGroup, type Projector } from "./projections/projector.js";
import { openReadModelDb } from "./projections/read-model-db.js";
import { readModels } from "./projections/read-models/all.js";
import { artworkKvProjection, marketplaceBucket } from "./projections/read-models/artwork-kv.js";
import { ConfigError, loadStreamsConfig } from "./streams/config.js";
import { openStreams } from "./streams/open-streams.js";
import { leasesBucket } from "./streams/topology.js";

const log = pino({ name: "foldline-projector" });

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
  const owner = `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
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
  const lease = createLease({
    kv: leases,
    key: `projector-${createHash("sha256").update(file).digest("hex").slice(0, 32)}`,
    owner,
    ttlMs: config.leaseTtlMs,
    log,
  });
  const stopping = new AbortController();
  const db = openReadModelDb(file);
  let projectors: Projector[] = [];
  let lost: (() => void) | undefined;
  lease.onLost(() => lost?.());

  const stop = (signal: NodeJS.Signals): void => {
    log.info({ signal }, "stopping");
    stopping.abort();
    void (async () => {
      await Promise.all([...projectors.map((p) => p.stop()), kvProjector.stop()]);
      await lease.release();
      db.close();
      await streams.close();
      log.info({ projectors: projectors.map((p) => p.status()) }, "stopped");
      process.exit(0);
    })();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);

  // Stand by until the lease is ours, project until it is lost, stand by again.
  while (!stopping.signal.aborted) {
    log.info({ database: file }, "standing by for the projector lease");
    try {
      await lease.acquire(stopping.signal);
    } catch {
      return; // stopping
    }
    // One read of the stream feeds every read model of the file.
    const group = createProjectorGroup({ store: streams.store, db, projections: readModels, log, batchSize: config.batchSize });
    projectors = [...group.projectors];
    group.start();
    log.info({ database: file, projectors: projectors.map((p) => p.status()) }, "projecting");
    await new Promise<void>((done) => {
      lost = done;
      stopping.signal.addEventListener("abort", () => {
        done();
      }, { once: true });
    });
    await Promise.all(projectors.map((p) => p.stop()));
  }
}

main().catch((err: unknown) => {
  log.fatal({ err }, "projector could not start");
  process.exitCode = 1;
});
