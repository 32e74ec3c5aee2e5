import { readFileSync } from "node:fs";
import { connect, credsAuthenticator, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import type { NatsAuth, NatsTls } from "./config.js";

/** Options for {@link connectNats}. */
export interface ConnectNatsOptions {
  /** One URL or several, comma-separated. */
  readonly servers: string;
  readonly auth?: NatsAuth;
  readonly tls?: NatsTls | undefined;
  /** Bound on the first connection attempt and on every request. */
  readonly timeoutMs: number;
  /** Shown in the server's connection list. */
  readonly name?: string;
}

/**
 * Connects to NATS with the usual options: credentials file, user and password, or token; TLS with CA,
 * certificate and key. After the first connection the client reconnects forever, so an outage is seen by
 * callers as requests that time out (UnavailableError), never as a connection that gave up.
 */
export async function connectNats(options: ConnectNatsOptions): Promise<NatsConnection> {
  const { auth = {}, tls } = options;
  const opts: ConnectionOptions = {
    servers: options.servers.split(",").map((s) => s.trim()).filter((s) => s !== ""),
    name: options.name ?? "foldline",
    timeout: options.timeoutMs,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 10_000,
    // The client otherwise builds two Error objects with stack traces per request, in case it fails: measured at
    // a third of the client's CPU per append. Failures are wrapped in foldline's own typed errors anyway.
    noAsyncTraces: true,
  };
  if (auth.credsFile !== undefined) opts.authenticator = credsAuthenticator(readFileSync(auth.credsFile));
  if (auth.user !== undefined) opts.user = auth.user;
  if (auth.password !== undefined) opts.pass = auth.password;
  if (auth.token !== undefined) opts.token = auth.token;
  if (tls !== undefined) {
    opts.tls = {};
    if (tls.caFile !== undefined) opts.tls.caFile = tls.caFile;
    if (tls.certFile !== undefined) opts.tls.certFile = tls.certFile;
    if (tls.keyFile !== undefined) opts.tls.keyFile = tls.keyFile;
  }
  return connect(opts);
}
