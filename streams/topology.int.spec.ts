import {
  DiscardPolicy,
  PersistMode,
  RetentionPolicy,
  StorageType,
  jetstreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { connect, nanos } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { startTestNats, testConfig } from "../test/harness/nats.js";
import { checkEventStream } from "./capabilities.js";
import { CapabilityError, TopologyError } from "./errors.js";
import { openStreams } from "./open-streams.js";

// Each test gets a server of its own: they create conflicting streams on the same subjects.

/** The event stream as foldline declared it before appends were atomic batches: everything but allow_atomic. */
const eventStreamBeforeAtomicBatches: Partial<StreamConfig> & { name: string } = {
  name: "EVENTS",
  subjects: ["ev.>"],
  storage: StorageType.File,
  retention: RetentionPolicy.Limits,
  discard: DiscardPolicy.Old,
  num_replicas: 1,
  duplicate_window: nanos(120_000),
  deny_delete: true,
  deny_purge: true,
  allow_direct: true,
  allow_rollup_hdrs: false,
};
describe("topology as code", () => {
  it("creates the stream and buckets once and changes nothing on a second start", async () => {
    await using nats = await startTestNats();
    const first = await openStreams(testConfig(nats));
    await first.close();
    expect(first.changes.map((c) => `${c.stream} ${c.action}`)).toEqual([
      "EVENTS created",
      "KV_foldline-snapshots created",
      "KV_foldline-leases created",
      "KV_foldline-processes created",
    ]);
    const second = await openStreams(testConfig(nats));
    await second.close();
    expect(second.changes).toEqual([]);
  });

  it("changes a setting that can change in place and reports it", async () => {
    await using nats = await startTestNats();
    await (await openStreams(testConfig(nats))).close();
    const changed = await openStreams(testConfig(nats, { EVENT_STREAM_DUPLICATE_WINDOW_MS: "30000" }));
    await changed.close();
    expect(changed.changes).toEqual([
      { stream: "EVENTS", action: "updated", details: [`duplicate_window: ${nanos(120_000)} -> ${nanos(30_000)}`] },
    ]);
  });

  it("adds missing guards to an existing stream", async () => {
    await using nats = await startTestNats();
    const nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "EVENTS", subjects: ["ev.>"], storage: StorageType.File });
    await nc.close();
    const streams = await openStreams(testConfig(nats));
    await streams.close();
    expect(streams.changes[0]?.action).toBe("updated");
    expect(streams.changes[0]?.details.join(" ")).toMatch(/deny_delete.*deny_purge.*allow_direct.*allow_atomic/);
  });

  it("turns atomic batches on, in place, for an event stream of an earlier foldline", async () => {
    await using nats = await startTestNats();
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add(eventStreamBeforeAtomicBatches);
      await jsm.streams.add({ name: "EVENTS_PROBE", subjects: ["foldline.probe.EVENTS.>"], storage: StorageType.File });
      const js = jsm.jetstream();
      await js.publish("ev.thing.1", "before");
      const streams = await openStreams(testConfig(nats));
      await streams.close();
      expect(streams.changes.filter((c) => c.stream === "EVENTS")).toEqual([
        {
          stream: "EVENTS",
          action: "updated",
          details: ['subjects: ["ev.>"] -> ["ev.>","cmd.>"]', "allow_atomic: undefined -> true"],
        },
      ]);
      const events = await jsm.streams.info("EVENTS");
      expect(events.config.allow_atomic).toBe(true);
      expect(events.state.messages).toBe(1);
      await expect(checkEventStream(jsm, testConfig(nats).stream)).resolves.toBeUndefined();
      // The probe stream of an earlier foldline is brought in line the same way, or the self-test would refuse it.
      expect((await jsm.streams.info("EVENTS_PROBE")).config.allow_atomic).toBe(true);
    } finally {
      await nc.close();
    }
  });

  it("says what to do when the server refuses atomic batches on an existing event stream", async () => {
    await using nats = await startTestNats();
    const nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    // The server never allows atomic batches on a stream with asynchronous persistence, nor changes that mode.
    await jsm.streams.add({ ...eventStreamBeforeAtomicBatches, persist_mode: PersistMode.Async });
    await nc.close();
    const failure = openStreams(testConfig(nats));
    await expect(failure).rejects.toBeInstanceOf(TopologyError);
    await expect(failure).rejects.toThrow(/allow_atomic: undefined -> true.*refused with code 10052/);
    await expect(failure).rejects.toThrow(/needs nats-server 2\.12 or newer.*default persist_mode.*migrate the events/);
  });

  it("reports a setting that cannot change in place instead of ignoring it", async () => {
    await using nats = await startTestNats();
    const nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "EVENTS", subjects: ["ev.>"], storage: StorageType.Memory });
    await nc.close();
    const failure = openStreams(testConfig(nats));
    await expect(failure).rejects.toBeInstanceOf(TopologyError);
    await expect(failure).rejects.toThrow(/storage: "memory" -> "file"/);
  });

  it("reports a stream the server cannot create", async () => {
    await using nats = await startTestNats();
    // A single server cannot hold three replicas.
    const failure = openStreams(testConfig(nats, { EVENT_STREAM_REPLICAS: "3" }));
    await expect(failure).rejects.toBeInstanceOf(TopologyError);
    await expect(failure).rejects.toThrow(/could not be created/);
  });
});

describe("capability self-test", () => {
  it("refuses a stream created without the settings foldline relies on", async () => {
    await using nats = await startTestNats();
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "EVENTS", subjects: ["ev.>"], storage: StorageType.Memory });
      const check = checkEventStream(jsm, { name: "EVENTS", replicas: 1, duplicateWindowMs: 60_000 });
      await expect(check).rejects.toBeInstanceOf(CapabilityError);
      await expect(check).rejects.toThrow(
        /file storage, deny_delete, deny_purge, allow_direct, allow_atomic .*, duplicate_window 60000 ms/,
      );
    } finally {
      await nc.close();
    }
  });

  it("refuses an event stream without atomic batches, saying what to do", async () => {
    await using nats = await startTestNats();
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add(eventStreamBeforeAtomicBatches);
      const check = checkEventStream(jsm, testConfig(nats).stream);
      await expect(check).rejects.toBeInstanceOf(CapabilityError);
      await expect(check).rejects.toThrow(
        /stream EVENTS lacks what foldline needs: subjects include cmd\.>, allow_atomic \(atomic batch publish, nats-server 2\.12 or newer\); run nats-server 2\.12/,
      );
    } finally {
      await nc.close();
    }
  });

  it("refuses a server without JetStream, saying how to enable it", async () => {
    await using nats = await startTestNats({ jetstream: false });
    const failure = openStreams(testConfig(nats));
    await expect(failure).rejects.toBeInstanceOf(CapabilityError);
    await expect(failure).rejects.toThrow(/JetStream is not enabled.*-js/);
  });

  it("passes on nats-server 2.12 or newer with a correctly declared stream", async () => {
    await using nats = await startTestNats();
    const streams = await openStreams(testConfig(nats));
    await streams.close();
    expect(streams.serverVersion).toMatch(/^2\.(1[2-9]|[2-9]\d)\./);
  });
});
