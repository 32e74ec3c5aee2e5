import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import type { App } from "../app.js";
import { clients } from "./harness/app.js";
import { startTestApp } from "./harness/app.js";
import { startTestNats, type TestNats } from "./harness/nats.js";
import { until } from "./harness/until.js";

const timeoutMs = 1_500;
// Time allowed beyond the bound for timers, the event loop and HTTP/2 on a busy machine.
const slackMs = 1_000;

let nats: TestNats;
let app: App;

beforeAll(async () => {
  nats = await startTestNats();
  // The take-over age stays at its default (30 s): a server retrying its own failed attempts need not wait for it.
  app = await startTestApp(nats, { NATS_TIMEOUT_MS: String(timeoutMs) });
});
afterAll(async () => {
  // nats-server is stopped even when foldline never started (setup failed) or fails to close.
  try {
    await app.close();
  } finally {
    await nats.stop();
  }
});

describe("commands during a NATS outage", () => {
  it("fail with Unavailable within the bound, succeed after the restart, and are in the stream exactly once", async () => {
    const { wallet, health } = clients(app.url);
    const acked = new Map<string, { walletId: string; position: bigint }>();
    const failures: { elapsedMs: number; code: Code; message: string }[] = [];
    let running = true;

    // Eight callers, each on its own wallet, each retrying an unanswered command with the same id until it
    // is answered, as a client following the API's contract would.
    const caller = async (n: number): Promise<void> => {
      const walletId = `w-${n}-${randomUUID()}`;
      await wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId, ownerId: "ada" });
      let commandId = randomUUID();
      while (running) {
        const started = Date.now();
        try {
          const res = await wallet.deposit({ metadata: { commandId }, walletId, amountCents: 1n });
          acked.set(commandId, { walletId, position: res.result?.position ?? 0n });
          commandId = randomUUID();
        } catch (err) {
          const e = ConnectError.from(err);
          failures.push({ elapsedMs: Date.now() - started, code: e.code, message: e.rawMessage });
          await sleep(50);
        }
      }
    };
    const callers = Array.from({ length: 8 }, (_, n) => caller(n));

    await sleep(700);
    const ackedBeforeKill = acked.size;
    await nats.kill();
    await sleep(timeoutMs * 2);
    const failedWhileDown = failures.length;
    expect((await health.check({})).status).toBe(2); // NOT_SERVING while NATS is away

    await nats.restart();
    const upAgain = Date.now();
    while (acked.size < ackedBeforeKill + 200 && Date.now() - upAgain < 20_000) await sleep(50);
    running = false;
    await Promise.all(callers);

    expect(ackedBeforeKill).toBeGreaterThan(0);
    expect(failedWhileDown).toBeGreaterThan(0);
    expect(acked.size).toBeGreaterThanOrEqual(ackedBeforeKill + 200);
    expect((await health.check({})).status).toBe(1);
    for (const f of failures) {
      expect(f.code, f.message).toBe(Code.Unavailable);
      expect(f.elapsedMs).toBeLessThan(timeoutMs + slackMs);
    }

    // Every acknowledged command is in the stream exactly once, at the position it was answered with.
    const byCommand = new Map<string, bigint[]>();
    for await (const commit of app.streams.store.readAll({ subjectFilter: "ev.wallet.>" })) {
      byCommand.set(commit.metadata.commandId, [...(byCommand.get(commit.metadata.commandId) ?? []), BigInt(commit.seq)]);
    }
    for (const [commandId, { position }] of acked) expect(byCommand.get(commandId)).toEqual([position]);
    for (const positions of byCommand.values()) expect(positions).toHaveLength(1);
  });
});

describe("while NATS is paused", () => {
  it("each command fails with Unavailable within the bound, also when queued behind others on one aggregate", async () => {
    const { wallet } = clients(app.url);
    const walletId = `w-paused-${randomUUID()}`;
    await wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId, ownerId: "ada" });
    await nats.pause();
    let answers;
    try {
      // Eight commands on one aggregate, each queued behind the ones before it.
      answers = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const started = Date.now();
          try {
            await wallet.deposit({ metadata: { commandId: randomUUID() }, walletId, amountCents: 1n });
            return { elapsedMs: Date.now() - started, code: undefined };
          } catch (err) {
            return { elapsedMs: Date.now() - started, code: ConnectError.from(err).code };
          }
        }),
      );
    } finally {
      nats.resume();
    }
    for (const a of answers) {
      expect(a.code).toBe(Code.Unavailable);
      expect(a.elapsedMs).toBeLessThan(timeoutMs + slackMs);
    }
    await until("the wallet takes commands again", async () =>
      wallet.deposit({ metadata: { commandId: randomUUID() }, walletId, amountCents: 1n }).then(() => true, () => false),
    );
  });

  it("health turns NOT_SERVING within a probe's interval and timeout, and SERVING once NATS answers again", async () => {
    const { health } = clients(app.url);
    // SERVING first: a probe sent during an earlier pause may still report its failure.
    await until("SERVING", async () => (await health.check({})).status === ServingStatus.SERVING, 5_000);
    await nats.pause();
    try {
      const pausedAt = Date.now();
      // The probe runs every second (HEALTH_PROBE_INTERVAL_MS) and fails after NATS_TIMEOUT_MS.
      await until("NOT_SERVING", async () => (await health.check({})).status === ServingStatus.NOT_SERVING, 1_000 + timeoutMs + slackMs);
      expect(Date.now() - pausedAt).toBeLessThan(1_000 + timeoutMs + slackMs);
    } finally {
      nats.resume();
    }
    await until("SERVING again", async () => (await health.check({})).status === ServingStatus.SERVING, 5_000);
  });
});
