import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { clients, startTestApp, type Clients } from "../test/harness/app.js";
import { startTestNats, type TestNats } from "../test/harness/nats.js";
import { openWallets, walletTraffic, walletsFromReadModel, walletsFromStream } from "../test/harness/wallets.js";
import { createProjector, type Projection } from "./projector.js";
import { openReadModelDb } from "./read-model-db.js";
import { walletsProjection } from "./read-models/wallets.js";

const log = pino({ level: process.env.FOLDLINE_TEST_LOG ?? "silent" });
let nats: TestNats;
let app: App;
let c: Clients;
let dir: string;

beforeAll(async () => {
  nats = await startTestNats();
  app = await startTestApp(nats);
  c = clients(app.url);
  dir = mkdtempSync(join(tmpdir(), "foldline-projector-"));
});
afterAll(async () => {
  await app.close();
  await nats.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("projector", () => {
  it("folds the stream into the wallets read model, resumes from its checkpoint, and equals the aggregates", async () => {
    const file = join(dir, "resume.sqlite");
    const wallets = await openWallets(c, 12, "pr");
    const db = openReadModelDb(file);
    const first = createProjector({ store: app.streams.store, db, projection: walletsProjection, log, batchSize: 50 });
    first.start();
    const position = await walletTraffic(c, wallets, 600);
    expect(await first.waitFor(position, 10_000)).toBe(true);
    expect(walletsFromReadModel(db)).toEqual(await walletsFromStream(app.streams.store));
    await first.stop();
    const appliedFirst = first.status().commitsApplied;
    expect(first.status().batches).toBeLessThan(appliedFirst); // commits were applied in batches

    // More commands while no projector runs; a new one picks up exactly where the first stopped.
    const later = await walletTraffic(c, wallets, 300);
    const second = createProjector({ store: app.streams.store, db, projection: walletsProjection, log });
    second.start();
    expect(await second.waitFor(later, 10_000)).toBe(true);
    expect(second.status().commitsApplied).toBe(later - first.status().position);
    expect(walletsFromReadModel(db)).toEqual(await walletsFromStream(app.streams.store));
    await second.stop();
    db.close();
  });

  it("runs embedded in the foldline process when PROJECTORS=embedded, and stops with it", async () => {
    const file = join(dir, "embedded.sqlite");
    const embedded = await startTestApp(nats, { PROJECTORS: "embedded", READ_MODEL_DB: file });
    try {
      const [projector] = embedded.projectors;
      expect(projector?.status().state).toBe("running");
      const ec = clients(embedded.url);
      const position = await walletTraffic(ec, await openWallets(ec, 3, "emb"), 60);
      expect(await projector?.waitFor(position, 10_000)).toBe(true);
    } finally {
      await embedded.close();
    }
    expect(embedded.projectors[0]?.status().state).toBe("stopped");
    const db = openReadModelDb(file);
    expect(walletsFromReadModel(db)).toEqual(await walletsFromStream(app.streams.store));
    db.close();
  });

  it("stops a second projector of the same read model before it applies anything twice", async () => {
    const file = join(dir, "two.sqlite");
    const wallets = await openWallets(c, 4, "two");
    const one = createProjector({ store: app.streams.store, db: openReadModelDb(file), projection: walletsProjection, log });
    const other = createProjector({ store: app.streams.store, db: openReadModelDb(file), projection: walletsProjection, log });
    one.start();
    other.start();
    const position = await walletTraffic(c, wallets, 200);
    await until(() => [one, other].some((p) => p.status().state === "failed"));
    const failed = [one, other].find((p) => p.status().state === "failed");
    const survivor = [one, other].find((p) => p.status().state === "running");
    expect(await survivor?.waitFor(position, 5_000)).toBe(true);
    expect(failed?.status().error).toMatch(/another projector writes this read model/);
    const check = openReadModelDb(file);
    expect(walletsFromReadModel(check)).toEqual(await walletsFromStream(app.streams.store));
    await Promise.all([one.stop(), other.stop()]);
    check.close();
  });

  it("retries a failing batch, then stops at the last good checkpoint with the error in its status", async () => {
    const wallets = await openWallets(c, 1, "poison");
    const before = await walletTraffic(c, wallets, 5, 1);
    const poison = (await c.wallet.deposit({ metadata: { commandId: randomUUID() }, walletId: wallets[0] ?? "", amountCents: 666n })).result?.position;
    let attempts = 0;
    const failing: Projection = {
      name: "failing",
      migrate: () => undefined,
      prepare: () => (commit) => {
        if (BigInt(commit.seq) === poison) {
          attempts++;
          throw new Error(`cannot apply commit ${commit.seq}`);
        }
      },
    };
    const db = openReadModelDb(join(dir, "poison.sqlite"));
    const projector = createProjector({ store: app.streams.store, db, projection: failing, log, maxAttempts: 3, batchSize: 1 });
    projector.start();
    await until(() => projector.status().state === "failed");
    expect(attempts).toBe(3);
    const status = projector.status();
    expect(status.state).toBe("failed");
    expect(status.position).toBeGreaterThanOrEqual(before);
    expect(status.position).toBe(Number(poison) - 1);
    expect(status.error).toMatch(new RegExp(`cannot apply commit ${poison}`));
    await projector.stop();
    db.close();
  });
});

/** Polls `condition` every 20 ms for up to 10 s. */
async function until(condition: () => boolean): Promise<void> {
  for (const deadline = Date.now() + 10_000; !condition(); ) {
    if (Date.now() > deadline) throw new Error("condition not reached in 10 s");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
