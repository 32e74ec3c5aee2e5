// The foldline process: the stream layer, the command pipeline, the API server and the projectors, wired together.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { Logger } from "pino";
import { createApiServer, type ApiServer } from "./commands/api-server.js";
import type { CommandPipeline } from "./commands/command-pipeline.js";
import type { CommandsConfig } from "./commands/config.js";
import { openCommandPipeline } from "./commands/open-pipeline.js";
import { errorInterceptor } from "./commands/error-codes.js";
import { createHealthService } from "./commands/health.js";
import { registerMarketplace } from "./commands/marketplace/services.js";
import type { ProjectionsConfig } from "./projections/config.js";
import { createNatsProjectionAdmin } from "./projections/admin-nats.js";
import { registerAdmin } from "./projections/admin-service.js";
import { createProjectionHost, type ProjectionHost } from "./projections/projection-host.js";
import type { Projector } from "./projections/projector.js";
import { purchaseProcess } from "./projections/processes/purchase-process.js";
import { startReactor, type Reactor } from "./projections/reactor.js";
import { registerQueries } from "./projections/read-models/query-service.js";
import { openReadModelDb, type ReadModelDb } from "./projections/read-model-db.js";
import { createReadModelReader, type ReadModelReader } from "./projections/read-model-reader.js";
import { createSqlRunner, type SqlRunner } from "./projections/sql/sql-runner.js";
import { registerSql } from "./projections/sql/sql-service.js";
import { createKvProjector, type KvProjector } from "./projections/kv-projector.js";
import { createLease, leaseOwner } from "./projections/lease.js";
import { readModels } from "./projections/read-models/all.js";
import { artworkKvProjection, marketplaceBucket } from "./projections/read-models/artwork-kv.js";
import type { StreamsConfig } from "./streams/config.js";
import { writeProbeSubject } from "./streams/capabilities.js";
import { openStreams, type OpenStreams } from "./streams/open-streams.js";
import { leasesBucket } from "./streams/topology.js";
import { watchWrites } from "./streams/write-probe.js";

/** A running foldline: the API on {@link App.url}. */
export interface App extends AsyncDisposable {
  readonly url: string;
  readonly streams: OpenStreams;
  readonly pipeline: CommandPipeline;
  readonly server: ApiServer;
  /** The projectors running in this process (none with `PROJECTORS=separate`); a rebuild replaces its projection's. */
  readonly projectors: readonly Projector[];
  /** The host of the projectors running in this process, with their rebuilds (undefined with `PROJECTORS=separate`). */
  readonly projectionHost: ProjectionHost | undefined;
  /** The KV projectors of this process, each running while it holds its lease. */
  readonly kvProjectors: readonly KvProjector[];
  /** The process managers of this process (the purchase process), each running while it holds its lease. */
  readonly reactors: readonly Reactor[];
  /**
   * Shuts down gracefully: health turns NOT_SERVING, the server stops taking requests and waits for those in
   * flight (Execute streams answer what they started), the pipeline finishes its writes, then NATS closes.
   */
  close(): Promise<void>;
}

/**
 * Starts foldline; on any failure stops what it started (projectors, process managers, the pipeline, the stream
 * layer and an embedded nats-server) and rethrows, so that nothing keeps running or logging behind the error.
 */
export async function startApp(
  config: { streams: StreamsConfig; commands: CommandsConfig; projections: ProjectionsConfig },
  log: Logger,
): Promise<App> {
  const streams = await openStreams(config.streams, [marketplaceBucket]);
  // What has started so far, stopped by `stopStarted` when start-up fails and by `close` after the server.
  let db: ReadModelDb | undefined;
  let host: ProjectionHost | undefined;
  let sqlRunner: SqlRunner | undefined;
  let pipeline: CommandPipeline | undefined;
  let reader: ReadModelReader | undefined;
  const kvProjectors: KvProjector[] = [];
  const reactors: Reactor[] = [];
  const stopStarted = async (): Promise<void> => {
    await sqlRunner?.close();
    // Before the pipeline: a reaction cut short leaves its commit after the checkpoint, for the next leader.
    await Promise.all(reactors.map((r) => r.stop()));
    await pipeline?.close();
    await Promise.all([host?.stop(), ...kvProjectors.map((p) => p.stop())]);
    reader?.close();
    db?.close();
    await streams.close();
  };
  try {
    const js = jetstream(streams.nc, { timeout: config.streams.timeoutMs });
    const kvm = new Kvm(js);
    const c = config.commands;
    const commands = (pipeline = await openCommandPipeline(streams, kvm, c, log));
    if (config.projections.embedded) {
      mkdirSync(dirname(config.projections.databaseFile), { recursive: true });
      db = openReadModelDb(config.projections.databaseFile);
      host = createProjectionHost({
        store: streams.store,
        file: config.projections.databaseFile,
        db,
        projections: readModels,
        kvProjectors,
        reactors,
        log,
        batchSize: config.projections.batchSize,
      });
      host.start();
    }
    const marketplaceKv = await kvm.open(marketplaceBucket.name);
    if (config.projections.embedded) {
      const kvProjector = createKvProjector({
        store: streams.store,
        kv: marketplaceKv,
        projection: artworkKvProjection,
        lease: createLease({
          kv: await kvm.open(leasesBucket),
          key: `kv-projector.${marketplaceBucket.name}.${artworkKvProjection.name}`,
          owner: leaseOwner(),
          ttlMs: config.projections.leaseTtlMs,
          log,
        }),
        log,
      });
      kvProjector.start();
      kvProjectors.push(kvProjector);
    }
    // Process managers issue commands through this process's pipeline, one process at a time (a lease each).
    if (config.projections.embedded) {
      reactors.push(
        await startReactor({ kvm, store: streams.store, reaction: purchaseProcess({ store: streams.store, pipeline: commands }), ttlMs: config.projections.leaseTtlMs, log }),
      );
    }
    const projectionHost = host;
    const queries = (reader = createReadModelReader({
      file: config.projections.databaseFile,
      // An in-process projector says when it gets there; for one elsewhere the reader polls the checkpoint.
      ...(projectionHost === undefined
        ? {}
        : {
            waitFor: async (projection: string, position: number, timeoutMs: number) =>
              (await projectionHost.waitFor(projection, position, timeoutMs)) ||
              new Promise<boolean>((resolve) => {
                setTimeout(() => {
                  resolve(false);
                }, Math.min(5, timeoutMs));
              }),
          }),
    }));
    // Admin requests are answered here when the projectors run here, by the projector worker over NATS otherwise.
    const admin =
      projectionHost ?? createNatsProjectionAdmin(streams.nc, { statusTimeoutMs: config.streams.timeoutMs });
    // Analysts' SQL runs in worker processes of its own, started on the first query.
    const sql = (sqlRunner = createSqlRunner({ file: config.projections.databaseFile, lazy: true }));
    const health = createHealthService();
    const shutdown = new AbortController();
    const server = await createApiServer({
      routes: (router) => {
        health.register(router);
        registerMarketplace(router, { pipeline: commands, log, maxInFlightPerStream: c.maxInFlightPerStream, shutdown: shutdown.signal });
        registerQueries(router, queries, marketplaceKv);
        registerSql(router, sql);
        registerAdmin(router, admin);
      },
      interceptors: [errorInterceptor(log)],
      host: c.host,
      port: c.port,
      ...(c.tls === undefined ? {} : { tls: c.tls }),
      log,
      shutdownTimeoutMs: c.shutdownTimeoutMs,
      idleTimeoutMs: c.idleTimeoutMs,
    });
    server.shutdownSignal.addEventListener("abort", () => {
      health.shutdown();
      shutdown.abort();
    }, { once: true });

    let closing: Promise<void> | undefined;
    // Health says whether this server can write: a load balancer stops sending commands that would fail.
    const writes = watchWrites({
      nc: streams.nc,
      publisher: streams.publisher,
      subject: writeProbeSubject(config.streams.stream.name),
      intervalMs: c.healthProbeIntervalMs,
      onChange: ({ writable, error }) => {
        if (writable) log.info("JetStream takes writes: serving");
        else log.warn({ err: error }, "JetStream does not take writes: not serving");
        health.setStatus("", writable ? "serving" : "not_serving");
      },
    });

    const close = (): Promise<void> =>
      (closing ??= (async () => {
        writes.stop();
        await server.close();
        await stopStarted();
      })());
    return {
      url: server.url,
      streams,
      pipeline: commands,
      server,
      get projectors() {
        return projectionHost?.projectors() ?? [];
      },
      projectionHost,
      kvProjectors,
      reactors,
      close,
      [Symbol.asyncDispose]: close,
    };
  } catch (err) {
    await stopStarted().catch((stopErr: unknown) => {
      log.error({ err: stopErr }, "could not stop what had started");
    });
    throw err;
  }
}
