import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { checkEventStream, checkServer, probeAppendGuarantees } from "./capabilities.js";
import type { StreamsConfig } from "./config.js";
import { connectNats } from "./connect.js";
import { createEventStore, type EventStore } from "./event-store.js";
import { createJsPublisher, type JsPublisher } from "./js-publisher.js";
import { startNatsServer, type NatsServerProcess } from "./nats-server.js";
import { applyTopology, engineBuckets, type BucketSpec, type TopologyChange } from "./topology.js";

/** The stream layer, up and checked. Disposing it closes the connection and stops an embedded server. */
export interface OpenStreams extends AsyncDisposable {
  readonly nc: NatsConnection;
  readonly store: EventStore;
  /** The connection's publisher with acknowledgement, shared by the store and other hot-path writers. */
  readonly publisher: JsPublisher;
  /** The bound on every NATS request (NATS_TIMEOUT_MS). */
  readonly timeoutMs: number;
  /** The server's URL (the embedded server's when NATS_URL was unset). */
  readonly url: string;
  readonly serverVersion: string;
  /** What start-up changed in the topology. */
  readonly changes: readonly TopologyChange[];
  /** Set when foldline started its own nats-server. */
  readonly embedded: NatsServerProcess | undefined;
  close(): Promise<void>;
}

/**
 * Brings the stream layer up: starts an embedded nats-server when `config.natsUrl` is unset (store in
 * `<dataDir>/nats`, log in `<dataDir>/nats-server.log`, a free loopback port, a process group of its own; a server
 * left behind by a killed predecessor is stopped first, so the caller must hold the data directory's lock,
 * `lockDataDir`), connects, checks the server,
 * applies the topology (the event stream, the engine's buckets and `extraBuckets`), checks the stream in effect,
 * and proves on a probe stream the guards and atomic batches that appends rely on. Any failure closes what was
 * opened and rethrows.
 */
export async function openStreams(
  config: StreamsConfig,
  extraBuckets: readonly BucketSpec[] = [],
): Promise<OpenStreams> {
  let embedded: NatsServerProcess | undefined;
  let nc: NatsConnection | undefined;
  const close = async (): Promise<void> => {
    if (nc !== undefined && !nc.isClosed()) await nc.drain().catch(() => nc?.close());
    await embedded?.stop();
  };
  try {
    if (config.natsUrl === undefined) {
      embedded = await startNatsServer({
        storeDir: join(config.dataDir, "nats"),
        logFile: join(config.dataDir, "nats-server.log"),
        pidFile: join(config.dataDir, "nats-server.pid"),
        // Stopped by this process after its own shutdown, not by the terminal's Ctrl-C before it.
        ownProcessGroup: true,
      });
    }
    const url = config.natsUrl ?? embedded?.url ?? "";
    nc = await connectNats({ servers: url, auth: config.auth, tls: config.tls, timeoutMs: config.timeoutMs });
    const jsm = await checkServer(nc, { timeoutMs: config.timeoutMs });
    const changes = await applyTopology(nc, jsm, { stream: config.stream, buckets: [...engineBuckets, ...extraBuckets] });
    await checkEventStream(jsm, config.stream);
    await probeAppendGuarantees(nc, jsm, config.stream, config.timeoutMs);
    const publisher = createJsPublisher(nc, config.timeoutMs);
    const store = createEventStore({ nc, streamName: config.stream.name, timeoutMs: config.timeoutMs, publisher });
    return {
      nc,
      store,
      publisher,
      timeoutMs: config.timeoutMs,
      url,
      serverVersion: nc.info?.version ?? "",
      changes,
      embedded,
      close,
      [Symbol.asyncDispose]: close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
