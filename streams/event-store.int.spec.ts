import { randomUUID } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNats, testConfig, type TestNats } from "../test/harness/nats.js";
import { until } from "../test/harness/until.js";
import type { EventRecord } from "./commit-codec.js";
import { ConcurrencyError, InvalidAppendError } from "./errors.js";
import type { StoredCommit } from "./event-store.js";
import { openStreams, type OpenStreams } from "./open-streams.js";

let nats: TestNats;
let streams: OpenStreams;

beforeAll(async () => {
  nats = await startTestNats();
  streams = await openStreams(testConfig(nats));
});
afterAll(async () => {
  await streams.close();
  await nats.stop();
});

const enc = new TextEncoder();
const dec = new TextDecoder();
const aggregate = (): string => `ev.test.${randomUUID()}`;
const events = (n: number, tag = ""): EventRecord[] =>
  Array.from({ length: n }, (_, i) => ({
    type: `test.v1.Event${i % 3}`,
    schemaVersion: 1 + (i % 2),
    payload: enc.encode(JSON.stringify({ tag, index: i, of: n })),
  }));
const collect = async (it: AsyncIterable<StoredCommit>): Promise<StoredCommit[]> => {
  const out: StoredCommit[] = [];
  for await (const c of it) out.push(c);
  return out;
};

describe("round trip", () => {
  it("reads back commits of 1 to 50 events with their metadata, by aggregate and in readAll", async () => {
    const subject = aggregate();
    const store = streams.store;
    const written: { seq: number; events: EventRecord[]; commandId: string }[] = [];
    const before = await store.head();
    let expectedSeq = 0;
    for (let n = 1; n <= 50; n++) {
      const commandId = randomUUID();
      const evs = events(n, subject);
      const result = await store.append(subject, evs, {
        commandId,
        expectedSeq,
        actor: `actor-${n}`,
        correlationId: `corr-${n}`,
        causationId: `cause-${n}`,
      });
      expect(result.duplicate).toBe(false);
      expect(result.seq).toBeGreaterThan(expectedSeq);
      expectedSeq = result.seq;
      written.push({ seq: result.seq, events: evs, commandId });
    }

    const check = (commits: readonly StoredCommit[]): void => {
      expect(commits.map((c) => c.seq)).toEqual(written.map((w) => w.seq));
      commits.forEach((c, i) => {
        const w = written[i];
        expect(c.subject).toBe(subject);
        // Payloads are views into the received message; compare their bytes.
        expect(c.events.map((e) => ({ ...e, payload: new Uint8Array(e.payload) }))).toEqual(w?.events);
        expect(c.metadata.commandId).toBe(w?.commandId);
        expect(c.metadata.actor).toBe(`actor-${i + 1}`);
        expect(c.metadata.correlationId).toBe(`corr-${i + 1}`);
        expect(c.metadata.causationId).toBe(`cause-${i + 1}`);
        expect(Math.abs(c.metadata.recordedAt.getTime() - c.storedAt.getTime())).toBeLessThan(5_000);
      });
    };
    check(await store.readAggregate(subject));
    check(await collect(store.readAll({ fromSeq: before + 1 })));
    check(await collect(store.readAll({ subjectFilter: subject })));

    const afterTen = await store.readAggregate(subject, { afterSeq: written[9]?.seq ?? 0 });
    expect(afterTen.map((c) => c.seq)).toEqual(written.slice(10).map((w) => w.seq));
    expect(await store.lastSequence(subject)).toBe(expectedSeq);
    expect(await store.head()).toBeGreaterThanOrEqual(expectedSeq);
  });

  it("reads large aggregates in full, past the direct-get limit", async () => {
    const subject = aggregate();
    const other = aggregate();
    let seq = 0;
    for (let i = 0; i < 120; i++) {
      seq = (await streams.store.append(subject, events(1, `${i}`), { commandId: randomUUID(), expectedSeq: seq })).seq;
      // Interleave another aggregate so that the stream has gaps between this one's commits.
      await streams.store.append(other, events(1), { commandId: randomUUID() });
    }
    const commits = await streams.store.readAggregate(subject);
    expect(commits).toHaveLength(120);
    expect(commits.map((c) => (JSON.parse(dec.decode(c.events[0]?.payload)) as { tag: string }).tag)).toEqual(
      Array.from({ length: 120 }, (_, i) => `${i}`),
    );
    expect(commits.every((c) => c.subject === subject)).toBe(true);
    // The ordered consumer that read past the direct-get limit is gone.
    const jsm = await jetstreamManager(streams.nc);
    expect(await jsm.consumers.list("EVENTS").next()).toEqual([]);
  });

  it("bounds readAll by position and filter", async () => {
    const a = aggregate();
    const seqs: number[] = [];
    for (let i = 0; i < 5; i++) seqs.push((await streams.store.append(a, events(1), { commandId: randomUUID() })).seq);
    const middle = await collect(streams.store.readAll({ fromSeq: seqs[1] ?? 0, toSeq: seqs[3] ?? 0, subjectFilter: a }));
    expect(middle.map((c) => c.seq)).toEqual(seqs.slice(1, 4));
    expect(await collect(streams.store.readAll({ fromSeq: (seqs[4] ?? 0) + 1, subjectFilter: a }))).toEqual([]);
    expect(await collect(streams.store.readAll({ subjectFilter: "ev.nothing.>" }))).toEqual([]);
  });

  it("follows in batches: every commit once and in order, none empty or over the bound, live ones too, until aborted", async () => {
    const a = aggregate();
    const appended: number[] = [];
    for (let i = 0; i < 40; i++) {
      const round = Array.from({ length: 25 }, () => streams.store.append(a, events(1 + (i % 3)), { commandId: randomUUID() }));
      for (const r of await Promise.all(round)) appended.push(r.seq);
    }
    appended.sort((x, y) => x - y);
    const ctl = new AbortController();
    const seen: StoredCommit[] = [];
    const sizes: number[] = [];
    let live: number | undefined;
    for await (const batch of streams.store.followBatches({ fromSeq: appended[0] ?? 1, subjectFilter: a, maxBatch: 64, signal: ctl.signal })) {
      sizes.push(batch.length);
      seen.push(...batch);
      if (seen.length === appended.length) {
        // Caught up: a commit appended now still comes, in a batch of its own.
        live = (await streams.store.append(a, events(2), { commandId: randomUUID() })).seq;
      } else if (seen.length > appended.length) ctl.abort();
    }
    expect(seen.map((c) => c.seq)).toEqual([...appended, live]);
    expect(seen.at(-1)?.events).toHaveLength(2);
    expect(sizes.every((n) => n >= 1 && n <= 64)).toBe(true);
    // Catching up, batches fill rather than come a few commits at a time.
    expect(sizes.filter((n) => n === 64).length).toBeGreaterThanOrEqual(10);
    const jsm = await jetstreamManager(streams.nc);
    await until("the consumer is gone", async () => (await jsm.consumers.list("EVENTS").next()).length === 0);
  });

  it("ends a batched read aborted with commits still queued, after handing out what it holds", async () => {
    const a = aggregate();
    for (let i = 0; i < 10; i++) {
      await Promise.all(Array.from({ length: 50 }, () => streams.store.append(a, events(1), { commandId: randomUUID() })));
    }
    const ctl = new AbortController();
    const seqs: number[] = [];
    const read = (async () => {
      for await (const batch of streams.store.followBatches({ subjectFilter: a, maxBatch: 20, signal: ctl.signal })) {
        seqs.push(...batch.map((c) => c.seq));
        // Aborted at the first batch, the reader slow: the rest of what was delivered waits in the queue.
        if (!ctl.signal.aborted) ctl.abort();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    await Promise.race([read, new Promise((_, reject) => setTimeout(() => { reject(new Error("the read did not end")); }, 10_000))]);
    expect(seqs.length).toBeGreaterThanOrEqual(20);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
  });

  it("knows nothing of an aggregate that has no commits", async () => {
    const subject = aggregate();
    expect(await streams.store.readAggregate(subject)).toEqual([]);
    expect(await streams.store.lastSequence(subject)).toBe(0);
  });

  it("refuses empty commits and subjects outside the stream", async () => {
    const options = { commandId: randomUUID() };
    await expect(streams.store.append(aggregate(), [], options)).rejects.toBeInstanceOf(InvalidAppendError);
    for (const subject of ["other.thing", "ev.*", "ev.a.>", "ev..b", "ev", "ev.a b"]) {
      await expect(streams.store.append(subject, events(1), options)).rejects.toBeInstanceOf(InvalidAppendError);
    }
  });
});

describe("optimistic concurrency", () => {
  const race = async (subject: string, expectedSeq: number): Promise<PromiseSettledResult<unknown>[]> =>
    Promise.allSettled(
      Array.from({ length: 32 }, () => streams.store.append(subject, events(2), { commandId: randomUUID(), expectedSeq })),
    );

  it("lets exactly one of 32 concurrent appends to a new aggregate win", async () => {
    const subject = aggregate();
    const results = await race(subject, 0);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const losers = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(losers).toHaveLength(31);
    for (const l of losers) expect(l.reason).toBeInstanceOf(ConcurrencyError);
    expect(await streams.store.readAggregate(subject)).toHaveLength(1);
  });

  it("lets exactly one of 32 concurrent appends at an existing sequence win", async () => {
    const subject = aggregate();
    let seq = 0;
    for (let i = 0; i < 3; i++) seq = (await streams.store.append(subject, events(1), { commandId: randomUUID(), expectedSeq: seq })).seq;
    const results = await race(subject, seq);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const losers = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(losers).toHaveLength(31);
    for (const l of losers) expect(l.reason).toBeInstanceOf(ConcurrencyError);
    expect(await streams.store.readAggregate(subject)).toHaveLength(4);
  });

  it("refuses a stale expected sequence and a new-aggregate append to an existing one", async () => {
    const subject = aggregate();
    const first = await streams.store.append(subject, events(1), { commandId: randomUUID(), expectedSeq: 0 });
    await streams.store.append(subject, events(1), { commandId: randomUUID(), expectedSeq: first.seq });
    await expect(
      streams.store.append(subject, events(1), { commandId: randomUUID(), expectedSeq: first.seq }),
    ).rejects.toBeInstanceOf(ConcurrencyError);
    await expect(streams.store.append(subject, events(1), { commandId: randomUUID(), expectedSeq: 0 })).rejects.toBeInstanceOf(
      ConcurrencyError,
    );
  });
});

describe("idempotency", () => {
  it("appends a command id once and reports the repeat as a duplicate of the original", async () => {
    const subject = aggregate();
    const commandId = randomUUID();
    const first = await streams.store.append(subject, events(3), { commandId, expectedSeq: 0 });
    // The retry carries the same expected sequence as the original: deduplication must come first.
    const again = await streams.store.append(subject, events(3), { commandId, expectedSeq: 0 });
    expect(first.duplicate).toBe(false);
    expect(again).toEqual({ seq: first.seq, duplicate: true });
    const concurrent = await Promise.all(
      Array.from({ length: 8 }, () => streams.store.append(subject, events(3), { commandId })),
    );
    expect(concurrent.every((r) => r.seq === first.seq && r.duplicate)).toBe(true);
    const commits = await streams.store.readAggregate(subject);
    expect(commits).toHaveLength(1);
    expect(commits[0]?.metadata.commandId).toBe(commandId);
  });
});

describe("atomicity", () => {
  it("never shows a reader part of a commit", async () => {
    const subjects = Array.from({ length: 4 }, aggregate);
    const from = (await streams.store.head()) + 1;
    let writing = true;
    const writers = subjects.map(async (subject) => {
      for (let i = 0; i < 30; i++) {
        // Commits of up to 50 events of 1 KiB each: large enough to span several network writes.
        const n = 1 + ((i * 7) % 50);
        const evs = events(n, "x".repeat(1024));
        await streams.store.append(subject, evs, { commandId: randomUUID() });
      }
    });
    const whole = (c: StoredCommit): boolean => {
      const parts = c.events.map((e) => JSON.parse(dec.decode(e.payload)) as { index: number; of: number });
      return parts.length === parts[0]?.of && parts.every((p, i) => p.index === i);
    };
    let seen = 0;
    const readers = subjects.map(async (subject) => {
      while (writing) {
        for (const c of await streams.store.readAggregate(subject)) {
          expect(whole(c)).toBe(true);
          seen++;
        }
      }
    });
    await Promise.all(writers);
    writing = false;
    await Promise.all(readers);
    const all = await collect(streams.store.readAll({ fromSeq: from }));
    expect(all.filter((c) => subjects.includes(c.subject))).toHaveLength(120);
    expect(all.every(whole)).toBe(true);
    expect(seen).toBeGreaterThan(0);
  });
});
