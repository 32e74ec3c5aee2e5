import { randomUUID } from "node:crypto";
import { toBinary, create } from "@bufbuild/protobuf";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import type { WalletCommand } from "../domain/wallet/types.js";
import { walletType } from "../commands/marketplace/wallet-routes.js";
import { DepositRequestSchema } from "../gen/foldline/marketplace/v1/wallet_service_pb.js";
import { clients, startTestApp } from "./harness/app.js";
import { startTestNats, type TestNats } from "./harness/nats.js";

const snapshotEvery = 100;
// Each command is one atomic batch, which nats-server syncs to disk (5–7 ms here, much more on a busy disk): 2 000
// commits one after the other are twenty intervals of snapshots, in seconds.
const deposits = 2_000;
let nats: TestNats;
let writer: App;
const walletId = `w-${randomUUID()}`;

beforeAll(async () => {
  nats = await startTestNats();
  writer = await startTestApp(nats, { SNAPSHOT_EVERY: String(snapshotEvery) });
  await clients(writer.url).wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId, ownerId: "ada" });
  // Straight into the pipeline: the wire adds nothing to what this test is about, and 2 000 calls cost time.
  for (let i = 0; i < deposits; i++) {
    const commandId = randomUUID();
    const command: WalletCommand = { type: "Deposit", walletId, amountCents: 3n };
    await writer.pipeline.execute(walletType, {
      aggregateId: walletId,
      command,
      commandId,
      actor: "",
      correlationId: "",
      causationId: "",
      requestType: DepositRequestSchema.typeName,
      request: toBinary(DepositRequestSchema, create(DepositRequestSchema, { metadata: { commandId }, walletId, amountCents: 3n })),
    });
  }
  await writer.pipeline.close(); // waits for the snapshot writes in flight
}, 120_000);
afterAll(async () => {
  // nats-server is stopped even when foldline never started (setup failed) or fails to close.
  try {
    await writer.close();
  } finally {
    await nats.stop();
  }
});

describe("snapshots", () => {
  it("writes a snapshot every so many commits", () => {
    expect(writer.pipeline.stats.snapshotsWritten).toBe(Math.floor((deposits + 1) / snapshotEvery));
  });

  it("loads a 2 000-commit aggregate from its snapshot and at most an interval of commits after it", async () => {
    await using reader = await startTestApp(nats, { SNAPSHOT_EVERY: String(snapshotEvery) });
    const res = await clients(reader.url).wallet.withdraw({ metadata: { commandId: randomUUID() }, walletId, amountCents: 3n * BigInt(deposits) });
    expect(res.result?.version).toBe(BigInt(deposits + 2));
    const { stats } = reader.pipeline;
    expect(stats.loads).toBe(1);
    expect(stats.snapshotLoads).toBe(1);
    expect(stats.commitsRead).toBeLessThan(snapshotEvery);
    // The state is whole: every cent was withdrawn, and not one more is there.
    await expect(
      clients(reader.url).wallet.withdraw({ metadata: { commandId: randomUUID() }, walletId, amountCents: 1n }),
    ).rejects.toMatchObject({ rawMessage: "insufficient funds: available 0, requested 1" });
  });

  it("keeps the tail short for an aggregate that is always loaded cold", async () => {
    await using cold = await startTestApp(nats, { AGGREGATE_CACHE_SIZE: "0", SNAPSHOT_AFTER_COLD_READ: "3" });
    const { wallet } = clients(cold.url);
    for (let i = 0; i < 30; i++) {
      await wallet.deposit({ metadata: { commandId: randomUUID() }, walletId, amountCents: 1n });
    }
    const { stats } = cold.pipeline;
    expect(stats.loads).toBe(30);
    // A snapshot follows every load that read 3 commits, so no load reads more, and every third command or so
    // writes one (without the rule, 30 commands on a wallet that has a fresh snapshot would write none).
    expect(stats.commitsRead).toBeLessThanOrEqual(30 * 3);
    expect(stats.snapshotsWritten).toBeGreaterThanOrEqual(7);
    await cold.pipeline.close();
    const before = cold.pipeline.stats.commitsRead;
    await using again = await startTestApp(nats, { AGGREGATE_CACHE_SIZE: "0" });
    await clients(again.url).wallet.deposit({ metadata: { commandId: randomUUID() }, walletId, amountCents: 1n });
    expect(again.pipeline.stats.commitsRead).toBeLessThanOrEqual(3);
    expect(before).toBeGreaterThan(0);
  });

  it("replays from the first commit when the snapshot cannot be read, and gets the same state", async () => {
    const otherId = `w-${randomUUID()}`;
    await using app = await startTestApp(nats, { SNAPSHOT_EVERY: "5" });
    const { wallet } = clients(app.url);
    await wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId: otherId, ownerId: "bo" });
    for (let i = 0; i < 12; i++) await wallet.deposit({ metadata: { commandId: randomUUID() }, walletId: otherId, amountCents: 10n });
    await app.pipeline.close();
    const kv = await new Kvm(jetstream(app.streams.nc)).open("foldline-snapshots");
    await kv.put(`wallet.${otherId}`, new TextEncoder().encode("{not json"));

    await using fresh = await startTestApp(nats);
    await expect(
      clients(fresh.url).wallet.withdraw({ metadata: { commandId: randomUUID() }, walletId: otherId, amountCents: 121n }),
    ).rejects.toMatchObject({ rawMessage: "insufficient funds: available 120, requested 121" });
    expect(fresh.pipeline.stats.snapshotLoads).toBe(0);
    expect(fresh.pipeline.stats.commitsRead).toBe(13);
  });
});
