import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UnavailableError } from "../streams/errors.js";
import { openStreams, type OpenStreams } from "../streams/open-streams.js";
import { createEventStore, type StoredCommit } from "../streams/event-store.js";
import { startTestNats, testConfig, type TestNats } from "./harness/nats.js";

const timeoutMs = 1_500;
// Time allowed beyond the bound for timers and the event loop on a busy machine.
const slackMs = 1_000;

let nats: TestNats;
let streams: OpenStreams;

beforeAll(async () => {
  nats = await startTestNats();
  streams = await openStreams(testConfig(nats, { NATS_TIMEOUT_MS: String(timeoutMs) }));
});
afterAll(async () => {
  // nats-server is stopped even when foldline never started (setup failed) or fails to close.
  try {
    await streams.close();
  } finally {
    await nats.stop();
  }
});

describe("NATS outage", () => {
  it("fails appends within the bound while the server is down and loses no acknowledged append", async () => {
    const acked = new Map<string, { subject: string; seq: number }>();
    const failures: { elapsedMs: number; error: unknown }[] = [];
    let running = true;

    // Eight appenders, each retrying an unacknowledged command with the same id until it is acknowledged,
    // as a caller following the store's contract would.
    const appender = async (n: number): Promise<void> => {
      const subject = `ev.outage.${n}-${randomUUID()}`;
      let commandId = randomUUID();
      while (running) {
        const started = Date.now();
        try {
          const { seq } = await streams.store.append(subject, [{ type: "t", schemaVersion: 1, payload: new Uint8Array(8) }], {
            commandId,
          });
          acked.set(commandId, { subject, seq });
          commandId = randomUUID();
        } catch (error) {
          failures.push({ elapsedMs: Date.now() - started, error });
          await sleep(50);
        }
      }
    };
    const appenders = Array.from({ length: 8 }, (_, n) => appender(n));

    await sleep(500);
    const ackedBeforeKill = acked.size;
    await nats.kill();
    const downSince = Date.now();
    await sleep(timeoutMs * 2);
    const failedWhileDown = failures.length;

    // Reads fail within the bound too.
    for (const read of [() => streams.store.head(), () => streams.store.readAggregate("ev.outage.any")]) {
      const started = Date.now();
      await expect(read()).rejects.toBeInstanceOf(UnavailableError);
      expect(Date.now() - started).toBeLessThan(timeoutMs + slackMs);
    }

    await nats.restart();
    const upAgain = Date.now();
    // Appends succeed again once the client has reconnected.
    while (acked.size < ackedBeforeKill + 200 && Date.now() - upAgain < 20_000) await sleep(50);
    running = false;
    await Promise.all(appenders);

    expect(ackedBeforeKill).toBeGreaterThan(0);
    expect(failedWhileDown).toBeGreaterThan(0);
    expect(acked.size).toBeGreaterThanOrEqual(ackedBeforeKill + 200);
    expect(Date.now() - downSince).toBeGreaterThan(timeoutMs);
    for (const f of failures) {
      expect(f.error).toBeInstanceOf(UnavailableError);
      expect(f.elapsedMs).toBeLessThan(timeoutMs + slackMs);
    }

    // Every acknowledged append is in the stream exactly once, at the acknowledged position; no command id
    // appears twice even though unacknowledged ones were retried.
    const byCommand = new Map<string, StoredCommit[]>();
    for await (const commit of streams.store.readAll({ subjectFilter: "ev.outage.>" })) {
      const list = byCommand.get(commit.metadata.commandId) ?? [];
      list.push(commit);
      byCommand.set(commit.metadata.commandId, list);
    }
    for (const [commandId, { subject, seq }] of acked) {
      const stored = byCommand.get(commandId);
      expect(stored?.length).toBe(1);
      expect(stored?.[0]?.seq).toBe(seq);
      expect(stored?.[0]?.subject).toBe(subject);
    }
    for (const list of byCommand.values()) expect(list).toHaveLength(1);
  });

  it("ends a read that stops receiving with the unavailable error within the bound", async () => {
    const subject = `ev.outage-read.${randomUUID()}`;
    await Promise.all(
      Array.from({ length: 300 }, () =>
        streams.store.append(subject, [{ type: "t", schemaVersion: 1, payload: new Uint8Array(8) }], { commandId: randomUUID() }),
      ),
    );
    // A small batch, so that most of the read is still on the server when it dies.
    const store = createEventStore({ nc: streams.nc, streamName: "EVENTS", timeoutMs, readBatch: 10 });
    const read = store.readAll({ subjectFilter: subject });
    expect((await read.next()).done).toBe(false);
    await nats.kill();
    let received = 1;
    const started = Date.now();
    try {
      await expect(
        (async () => {
          for await (const commit of read) received += commit.events.length;
        })(),
      ).rejects.toBeInstanceOf(UnavailableError);
      expect(Date.now() - started).toBeLessThan(timeoutMs + slackMs);
      expect(received).toBeLessThan(300);
    } finally {
      await nats.restart();
    }
  });
});
