import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { pino, type Logger } from "pino";
import { startApp, type App } from "../../app.js";
import { loadCommandsConfig } from "../../commands/config.js";
import { loadProjectionsConfig } from "../../projections/config.js";
import { ArtworkService } from "../../gen/foldline/marketplace/v1/artwork_service_pb.js";
import { CommandService } from "../../gen/foldline/marketplace/v1/command_service_pb.js";
import { PurchaseService } from "../../gen/foldline/marketplace/v1/purchase_service_pb.js";
import { QueryService } from "../../gen/foldline/marketplace/v1/query_service_pb.js";
import { WalletService } from "../../gen/foldline/marketplace/v1/wallet_service_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { startTestNats, testConfig, type TestNats } from "./nats.js";

/** The wire protocols a test can speak; both over HTTP/2. */
export type Protocol = "connect" | "grpc";

/** Generated clients of every service, on one transport. */
export interface Clients {
  readonly artwork: Client<typeof ArtworkService>;
  readonly wallet: Client<typeof WalletService>;
  readonly commands: Client<typeof CommandService>;
  readonly purchases: Client<typeof PurchaseService>;
  readonly queries: Client<typeof QueryService>;
  readonly health: Client<typeof Health>;
}

/** Clients of every service over `protocol` to `url`. */
export function clients(url: string, protocol: Protocol = "grpc"): Clients {
  const transport: Transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl: url })
      : createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true });
  return {
    artwork: createClient(ArtworkService, transport),
    wallet: createClient(WalletService, transport),
    commands: createClient(CommandService, transport),
    purchases: createClient(PurchaseService, transport),
    queries: createClient(QueryService, transport),
    health: createClient(Health, transport),
  };
}

/**
 * Starts foldline (API on a free loopback port) on a test's nats-server, with environment-style overrides.
 * Close it with `close()` or `await using`. Logs go to `log` when given (a spec that checks what is logged);
 * otherwise nowhere unless FOLDLINE_TEST_LOG names a level.
 */
export async function startTestApp(
  nats: TestNats,
  env: Record<string, string> = {},
  log: Logger = pino({ level: process.env.FOLDLINE_TEST_LOG ?? "silent" }),
): Promise<App> {
  const streams = testConfig(nats, env);
  return startApp(
    {
      streams,
      commands: loadCommandsConfig({ API_PORT: "0", API_SHUTDOWN_TIMEOUT_MS: "5000", ...env }),
      // Tests that want embedded projectors say so, with a read-model file of their own.
      projections: loadProjectionsConfig(streams.dataDir, { PROJECTORS: "separate", ...env }),
    },
    log,
  );
}

/** What most spec files start with: their own nats-server, foldline on it, its clients and a temporary folder. */
export interface TestBed {
  readonly nats: TestNats;
  readonly app: App;
  readonly c: Clients;
  /** A temporary folder of the spec's own, for read-model files and workers' data. */
  readonly dir: string;
  /** Closes foldline, stops nats-server and removes the folder. */
  close(): Promise<void>;
}

/**
 * Starts a test bed: the folder `<tmpdir>/<prefix>XXXXXX` first, then nats-server, then foldline with `env(dir)`
 * as environment-style overrides and `log` as its logger, if given (see {@link startTestApp}).
 */
export async function startTestBed(
  prefix: string,
  env: (dir: string) => Record<string, string> = () => ({}),
  log?: Logger,
): Promise<TestBed> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const nats = await startTestNats();
  let app;
  try {
    app = await startTestApp(nats, env(dir), log);
  } catch (err) {
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    nats,
    app,
    c: clients(app.url),
    dir,
    async close() {
      await app.close();
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
