import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { AdminService } from "../gen/foldline/admin/v1/admin_service_pb.js";
import { clients, startTestApp } from "./harness/app.js";
import { startTestNats, type TestNats } from "./harness/nats.js";
import { killProjectorWorkers, startProjectorWorker } from "./harness/projector-worker.js";
import { until } from "./harness/until.js";
import { openWallets, walletTraffic } from "./harness/wallets.js";

const root = fileURLToPath(new URL("..", import.meta.url));
let nats: TestNats;
let embedded: App;
let separate: App;
let dir: string;

beforeAll(async () => {
  nats = await startTestNats();
  dir = mkdtempSync(join(tmpdir(), "foldline-admin-"));
  embedded = await startTestApp(nats, { PROJECTORS: "embedded", READ_MODEL_DB: join(dir, "embedded.sqlite") });
  separate = await startTestApp(nats, { READ_MODEL_DB: join(dir, "worker.sqlite") });
  const c = clients(embedded.url);
  await walletTraffic(c, await openWallets(c, 8, "adm"), 300);
});
afterAll(async () => {
  // nats-server is stopped even when foldline never started (setup failed) or fails to close.
  try {
    killProjectorWorkers();
    await embedded.close();
    await separate.close();
  } finally {
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

const adminOf = (app: App): Client<typeof AdminService> => createClient(AdminService, createGrpcTransport({ baseUrl: app.url }));

/** The code a call failed with; throws when it succeeded. */
async function codeOf(call: Promise<unknown>): Promise<Code> {
  try {
    await call;
  } catch (err) {
    if (err instanceof ConnectError) return err.code;
    throw err;
  }
  throw new Error("the call succeeded");
}

describe("AdminService on the API server running the projectors", () => {
  it("reports every projector's status, SQLite and KV, and the purchase process manager's", async () => {
    const head = await embedded.streams.store.head();
    await until("the read models are caught up", async () =>
      (await adminOf(embedded).getProjectionStatus({})).projections.every((p) => p.kind !== "sqlite" || p.position === BigInt(head)),
    );
    const { projections } = await adminOf(embedded).getProjectionStatus({});
    const wallets = projections.find((p) => p.projection === "wallets" && p.kind === "sqlite");
    expect(wallets).toMatchObject({ state: "running", position: BigInt(head), lag: 0n, parked: 0n, error: "" });
    expect(wallets?.head).toBe(BigInt(head));
    expect(wallets?.task).toBeUndefined();
    expect(projections.find((p) => p.projection === "artworks" && p.kind === "sqlite")?.state).toBe("running");
    expect(projections.find((p) => p.kind === "kv")?.state).toMatch(/^(running|standby)$/);
    expect(projections.find((p) => p.kind === "process")).toMatchObject({ projection: "purchases", parked: 0n, error: "" });
    expect(projections.find((p) => p.kind === "process")?.state).toMatch(/^(running|standby)$/);
  });

  it("rebuilds and diffs a read model", async () => {
    const admin = adminOf(embedded);
    const rebuilt = await admin.rebuildProjection({ projection: "wallets" });
    expect(rebuilt.tables.map((t) => t.table)).toEqual(["wallets", "wallet_reservations"]);
    expect(rebuilt.position).toBeGreaterThan(0n);
    const diff = await admin.diffProjection({ projection: "artworks" });
    expect(diff).toMatchObject({ projection: "artworks", identical: true, differences: 0n });
    expect(diff.tables.map((t) => t.table)).toEqual(["artworks", "provenance"]);
  });

  it("answers NOT_FOUND, INVALID_ARGUMENT and FAILED_PRECONDITION precisely", async () => {
    const admin = adminOf(embedded);
    expect(await codeOf(admin.rebuildProjection({ projection: "no-such-thing" }))).toBe(Code.NotFound);
    expect(await codeOf(admin.diffProjection({ projection: "no-such-thing" }))).toBe(Code.NotFound);
    expect(await codeOf(admin.rebuildProjection({ projection: "" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(admin.diffProjection({ projection: "wallets", maxRowsPerTable: 1001 }))).toBe(Code.InvalidArgument);
    // Two at once: the second is refused while the first is under way (tried again should the first be done first).
    for (let attempt = 0; ; attempt++) {
      const first = admin.rebuildProjection({ projection: "wallets" });
      const second = admin.diffProjection({ projection: "wallets" }).then(
        () => "done",
        (err: unknown) => (err instanceof ConnectError ? err.code : err),
      );
      await first;
      const outcome = await second;
      if (outcome === Code.FailedPrecondition) break;
      expect(outcome).toBe("done");
      if (attempt === 20) throw new Error("the second call never came while the first was under way");
    }
  });
});

describe("AdminService on an API server whose projectors run in a worker", () => {
  it("is UNAVAILABLE while no worker holds the lease", async () => {
    expect(await codeOf(adminOf(separate).getProjectionStatus({}))).toBe(Code.Unavailable);
    expect(await codeOf(adminOf(separate).rebuildProjection({ projection: "wallets" }))).toBe(Code.Unavailable);
  });

  it("forwards status, rebuild and diff to the worker over NATS, and its errors with their codes", async () => {
    startProjectorWorker({ NATS_URL: nats.url, DATA_DIR: dir, READ_MODEL_DB: join(dir, "worker.sqlite"), PROJECTOR_LEASE_TTL_MS: "1000" });
    const admin = adminOf(separate);
    const head = await separate.streams.store.head();
    await until(
      "the worker answers and has caught up",
      async () => {
        try {
          const { projections } = await admin.getProjectionStatus({});
          return projections.some((p) => p.projection === "wallets" && p.position === BigInt(head));
        } catch {
          return false;
        }
      },
      60_000,
    );
    expect((await admin.diffProjection({ projection: "wallets" })).identical).toBe(true);
    expect((await admin.rebuildProjection({ projection: "artworks" })).projection).toBe("artworks");
    expect(await codeOf(admin.rebuildProjection({ projection: "no-such-thing" }))).toBe(Code.NotFound);

    // The CLI, on the same server.
    const status = await cli(["--url", separate.url, "--json", "status"]);
    expect(status.code).toBe(0);
    const parsed = JSON.parse(status.stdout) as { projections: { projection: string; state: string }[] };
    expect(parsed.projections.find((p) => p.projection === "wallets")?.state).toBe("running");
    const table = await cli(["--url", separate.url, "status"]);
    expect(table.stdout).toMatch(/^projection +\| kind +\| state/);
    expect(table.stdout).toMatch(/\nwallets +\| sqlite +\| running/);
    expect(table.stdout).toMatch(/\npurchases +\| process +\| (running|standby)/);
    const diff = await cli(["--url", separate.url, "diff", "wallets"]);
    expect(diff).toMatchObject({ code: 0 });
    expect(diff.stdout).toContain("wallets equals a fresh rebuild at position");
    const rebuild = await cli(["--url", separate.url, "rebuild", "wallets"]);
    expect(rebuild.code).toBe(0);
    expect(rebuild.stdout).toMatch(/^rebuilt wallets and switched it in at position \d+/);
    const unknown = await cli(["--url", separate.url, "rebuild", "nope"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^NOT_FOUND: no SQLite projection named "nope"/);
    const usage = await cli(["frobnicate"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("usage: npm run -s admin");
  }, 120_000);
});

/** Runs `npm run admin`'s program with `args`. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "admin-main.ts", ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("exit", (code) => {
      resolve({ code, stdout, stderr });
    });
  });
}
