import { readFileSync } from "node:fs";
import { ConfigError, envReader, type Env } from "../streams/config.js";

/** What the API server and the command pipeline read from the environment. See the README's configuration table. */
export interface CommandsConfig {
  /** Interface the API listens on (default 127.0.0.1). */
  readonly host: string;
  /** Port of the API; 0 picks a free one (default 8080). */
  readonly port: number;
  /** Certificate and key (PEM) when the API serves TLS. */
  readonly tls: { readonly cert: Buffer; readonly key: Buffer } | undefined;
  /** How long shutdown waits for in-flight requests before cutting them off. */
  readonly shutdownTimeoutMs: number;
  /** How long a connection with no request in flight (HTTP/1.1) or no open stream (HTTP/2) stays open. */
  readonly idleTimeoutMs: number;
  /** Aggregates kept in memory. */
  readonly cacheSize: number;
  /** A snapshot is written every this many commits of an aggregate. */
  readonly snapshotEvery: number;
  /** A snapshot is also written after a cold load that read at least this many commits past the snapshot. */
  readonly snapshotAfterColdRead: number;
  /** Attempts of a command against concurrent writers before ABORTED. */
  readonly maxAttempts: number;
  /** Commands of one Execute stream handled concurrently. */
  readonly maxInFlightPerStream: number;
  /** Time between two write probes of the health check. */
  readonly healthProbeIntervalMs: number;
}

/** Reads the configuration from `env`, refusing malformed values with a ConfigError. */
export function loadCommandsConfig(env: Env = process.env): CommandsConfig {
  const { text, integer } = envReader(env);
  const certFile = text("API_TLS_CERT");
  const keyFile = text("API_TLS_KEY");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError("API_TLS_CERT and API_TLS_KEY must be set together");
  }
  const read = (name: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`${name} names ${file}, which cannot be read: ${(err as Error).message}`);
    }
  };
  return {
    host: text("API_HOST") ?? "127.0.0.1",
    port: integer("API_PORT", 8080, 0, 65_535),
    tls:
      certFile === undefined || keyFile === undefined
        ? undefined
        : { cert: read("API_TLS_CERT", certFile), key: read("API_TLS_KEY", keyFile) },
    shutdownTimeoutMs: integer("API_SHUTDOWN_TIMEOUT_MS", 10_000, 0, 600_000),
    idleTimeoutMs: integer("API_IDLE_TIMEOUT_MS", 65_000, 100, 3_600_000),
    cacheSize: integer("AGGREGATE_CACHE_SIZE", 10_000, 0, 10_000_000),
    snapshotEvery: integer("SNAPSHOT_EVERY", 100, 1, 1_000_000),
    snapshotAfterColdRead: integer("SNAPSHOT_AFTER_COLD_READ", 3, 1, 1_000_000),
    maxAttempts: integer("COMMAND_MAX_ATTEMPTS", 5, 1, 100),
    maxInFlightPerStream: integer("EXECUTE_MAX_IN_FLIGHT", 256, 1, 10_000),
    healthProbeIntervalMs: integer("HEALTH_PROBE_INTERVAL_MS", 1_000, 50, 60_000),
  };
}
