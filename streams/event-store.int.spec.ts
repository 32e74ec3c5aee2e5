import { randomUUID } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNats, testConfig, type TestNats } from "../test/harness/nats.js";
import { until } from "../test/harness/until.js";
import type { EventRecord } from "./commit-codec.js";
import { ConcurrencyError, InvalidAppendError, RecordExistsError } from "./errors.js";
import type { StoredCommit } from "./event-store.js";
import { openStreams, type OpenStreams } from "./open-streams.js";

let nats: TestNats;
let streams: OpenStreams;

beforeAll(async () => {
  nats = await startTestNats();
  streams = await openStreams(testConfig(nats));
});
afterAll(async () => {
  // nats-server is stopped even when the streams never opened (setup failed) or fail to close.
  try {
    await streams.close();
  } finally {
    await nats.stop();
  }
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
    // More than one batched direct get holds (256), so that the rest comes through an ordered consumer.
    for (let i = 0; i < 300; i++) {
      seq = (await streams.store.append(subject, events(1, `${i}`), { commandId: randomUUID(), expectedSeq: seq })).seq;
      // Interleave another aggregate so that the stream has gaps between this one's commits.
      await streams.store.append(other, events(1), { commandId: randomUUID() });
    }
    const commits = await streams.store.readAggregate(subject);
    expect(commits).toHaveLength(300);
    expect(commits.map((c) => (JSON.parse(dec.decode(c.events[0]?.payload)) as { tag: string }).tag)).toEqual(
      Array.from({ length: 300 }, (_, i) => `${i}`),
    );
    expect(commits.every((c) => c.subject === subject)).toBe(true);
    // A read up to a known last sequence stops there, though the batch it asked for holds later commits.
    const upTo = commits[99]?.seq ?? 0;
    expect((await streams.store.readAggregate(subject, { lastSeq: upTo })).map((c) => c.seq)).toEqual(commits.slice(0, 100).map((c) => c.seq));
    expect((await streams.store.readAggregate(subject, { afterSeq: commits[9]?.seq ?? 0, lastSeq: upTo })).map((c) => c.seq)).toEqual(
      commits.slice(10, 100).map((c) => c.seq),
    );
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
  it("appends a command id once inside the duplicate window and reports the repeat as a duplicate", async () => {
    const subject = aggregate();
    const commandId = randomUUID();
    const first = await streams.store.append(subject, events(3), { commandId, expectedSeq: 0 });
    // Unconditional: whether a repeat with a now-stale expected sequence is a duplicate or a conflict depends on
    // the server's version, which is why commands carry a record of their own (see "atomic batches").
    const again = await streams.store.append(subject, events(3), { commandId });
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

describe("atomic batches", () => {
  const record = (text: string): Uint8Array => enc.encode(text);

  it("stores a record and commits to several subjects consecutively, read back by every read", async () => {
    const subjects = Array.from({ length: 3 }, aggregate);
    const commandId = randomUUID();
    const parts = subjects.map((subject, i) => ({ subject, events: events(i + 1, subject), expectedSeq: 0, aggregateVersion: 1 }));
    const result = await streams.store.appendBatch(parts, { commandId, actor: "a", record: record("r1") });
    const first = result.seqs[0] ?? 0;
    expect(result.seqs).toEqual([first, first + 1, first + 2]);
    expect(result.recordSeq).toBe(first - 1);
    const stored = await streams.store.readRecord(commandId);
    expect(stored?.seq).toBe(first - 1);
    expect(dec.decode(stored?.data)).toBe("r1");
    const all = await collect(streams.store.readAll({ fromSeq: first - 1 }));
    expect(all.map((c) => [c.seq, c.subject, c.events.length])).toEqual(subjects.map((s, i) => [first + i, s, i + 1]));
    expect(all.every((c) => c.metadata.commandId === commandId && c.metadata.actor === "a")).toBe(true);
    for (const [i, subject] of subjects.entries()) {
      expect((await streams.store.readAggregate(subject)).map((c) => c.seq)).toEqual([first + i]);
    }
    expect(await streams.store.head()).toBe(first + 2);
  });

  it("refuses the whole batch when one part's condition is stale, and names that part", async () => {
    const [a, b, c] = [aggregate(), aggregate(), aggregate()];
    const bSeq = (await streams.store.append(b, events(1), { commandId: randomUUID() })).seq;
    const commandId = randomUUID();
    const refusal = streams.store.appendBatch(
      [
        { subject: a, events: events(1), expectedSeq: 0 },
        { subject: b, events: events(1), expectedSeq: bSeq - 1 },
        { subject: c, events: events(1), expectedSeq: 0 },
      ],
      { commandId, record: record("r") },
    );
    await expect(refusal).rejects.toBeInstanceOf(ConcurrencyError);
    await expect(refusal).rejects.toMatchObject({ part: 1, subject: b, expectedSeq: bSeq - 1 });
    expect([await streams.store.lastSequence(a), await streams.store.lastSequence(b), await streams.store.lastSequence(c)])
      .toEqual([0, bSeq, 0]);
    expect(await streams.store.readRecord(commandId)).toBeUndefined();
  });

  it("stores a command id's record once: a second batch with it is refused whole", async () => {
    const [a, b] = [aggregate(), aggregate()];
    const commandId = randomUUID();
    const first = await streams.store.appendBatch([{ subject: a, events: events(1), expectedSeq: 0 }], { commandId, record: record("1") });
    const again = streams.store.appendBatch([{ subject: b, events: events(1) }], { commandId, record: record("2") });
    await expect(again).rejects.toBeInstanceOf(RecordExistsError);
    expect(await streams.store.lastSequence(b)).toBe(0);
    expect((await streams.store.readRecord(commandId))?.seq).toBe(first.recordSeq);
  });

  it("stores a record alone, and the head stays at the last commit", async () => {
    const subject = aggregate();
    const seq = (await streams.store.append(subject, events(1), { commandId: randomUUID() })).seq;
    const before = await streams.store.head();
    expect(before).toBeGreaterThanOrEqual(seq);
    const commandId = randomUUID();
    const result = await streams.store.appendBatch([], { commandId, record: record("nothing changed") });
    expect(result).toEqual({ seqs: [], recordSeq: expect.any(Number) as number });
    expect(await streams.store.head()).toBe(before);
    expect(dec.decode((await streams.store.readRecord(commandId))?.data)).toBe("nothing changed");
  });

  it("lets exactly one of 24 racing batches over overlapping subjects win", async () => {
    const subjects = Array.from({ length: 4 }, aggregate);
    const results = await Promise.allSettled(
      Array.from({ length: 24 }, (_, i) => {
        // Every writer touches the first subject and two of the others, all expected new.
        const mine = [subjects[0] as string, subjects[1 + (i % 3)] as string, subjects[1 + ((i + 1) % 3)] as string];
        return streams.store.appendBatch(
          mine.map((subject) => ({ subject, events: events(1), expectedSeq: 0 })),
          { commandId: randomUUID(), record: record(String(i)) },
        );
      }),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(ConcurrencyError);
    const stored = await Promise.all(subjects.map((s) => streams.store.readAggregate(s)));
    expect(stored.map((c) => c.length).reduce((x, y) => x + y)).toBe(3);
  });

  it("holds a condition on a wildcard subject: no commit on any matching subject since the one expected", async () => {
    const type = `ev.w${randomUUID().slice(0, 8)}`;
    const first = await streams.store.appendBatch([{ subject: `${type}.a`, events: events(1), expectedSeq: 0, expectedSeqOf: `${type}.*` }], {
      commandId: randomUUID(),
    });
    const seq = first.seqs[0] ?? 0;
    await expect(
      streams.store.appendBatch([{ subject: `${type}.b`, events: events(1), expectedSeq: 0, expectedSeqOf: `${type}.*` }], {
        commandId: randomUUID(),
      }),
    ).rejects.toMatchObject({ part: 0, subject: `${type}.*`, expectedSeq: 0 });
    const results = await Promise.allSettled(
      Array.from({ length: 24 }, (_, i) =>
        streams.store.appendBatch([{ subject: `${type}.${i}`, events: events(1), expectedSeq: seq, expectedSeqOf: `${type}.*` }], {
          commandId: randomUUID(),
        }),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
  });

  it("refuses batches it cannot store", async () => {
    const commandId = randomUUID();
    await expect(streams.store.appendBatch([], { commandId })).rejects.toBeInstanceOf(InvalidAppendError);
    await expect(streams.store.appendBatch([{ subject: "ev.*", events: events(1) }], { commandId })).rejects.toBeInstanceOf(InvalidAppendError);
    await expect(streams.store.appendBatch([{ subject: aggregate(), events: [] }], { commandId })).rejects.toBeInstanceOf(InvalidAppendError);
    await expect(streams.store.appendBatch([], { commandId: "a.b", record: record("x") })).rejects.toBeInstanceOf(InvalidAppendError);
    const tooMany = Array.from({ length: 1_000 }, () => ({ subject: aggregate(), events: events(1) }));
    await expect(streams.store.appendBatch(tooMany, { commandId })).rejects.toBeInstanceOf(InvalidAppendError);
  });

  it("shares atomic batches between concurrent writers, and a stale condition fails its own writer only", async () => {
    const subjects = Array.from({ length: 64 }, aggregate);
    const seqs = await Promise.all(subjects.map((s) => streams.store.append(s, events(1), { commandId: randomUUID() })));
    const results = await Promise.allSettled(
      subjects.map((subject, i) =>
        streams.store.appendBatch([{ subject, events: events(2), expectedSeq: i === 17 ? 0 : (seqs[i]?.seq ?? 0) }], {
          commandId: randomUUID(),
          record: record(String(i)),
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(subjects.map((_, i) => (i === 17 ? "rejected" : "fulfilled")));
    expect((results[17] as PromiseRejectedResult).reason).toMatchObject({ kind: "concurrency", subject: subjects[17] });
    for (const [i, subject] of subjects.entries()) {
      const commits = await streams.store.readAggregate(subject);
      expect(commits).toHaveLength(i === 17 ? 1 : 2);
      const result = results[i];
      if (result?.status === "fulfilled") {
        expect(commits[1]?.seq).toBe(result.value.seqs[0]);
        expect((await streams.store.readRecord(commits[1]?.metadata.commandId ?? ""))?.seq).toBe(result.value.recordSeq);
      }
    }
  });

  it("never shows a reader part of a batch", async () => {
    const subjects = Array.from({ length: 4 }, aggregate);
    const from = (await streams.store.head()) + 1;
    const batches = 40;
    const ctl = new AbortController();
    // A follower that, the moment it sees a batch's first commit, reads the batch's last: it must be there.
    const checked: Promise<boolean>[] = [];
    const follower = (async () => {
      let seen = 0;
      for await (const c of streams.store.follow({ fromSeq: from, signal: ctl.signal })) {
        if (!subjects.includes(c.subject)) continue;
        if (c.subject === subjects[0]) {
          const last = streams.store.readCommit(c.seq + 3);
          checked.push(last.then((l) => l?.metadata.commandId === c.metadata.commandId && l.subject === subjects[3]));
        }
        if (++seen === batches * 4) return;
      }
    })();
    for (let i = 0; i < batches; i++) {
      // Commits of up to 50 events of 1 KiB each: a batch spans many network writes.
      const parts = subjects.map((subject, k) => ({ subject, events: events(1 + ((i * 7 + k * 13) % 50), "x".repeat(1024)) }));
      await streams.store.appendBatch(parts, { commandId: randomUUID(), record: record(String(i)) });
    }
    await follower;
    ctl.abort();
    expect(await Promise.all(checked)).toEqual(Array.from({ length: batches }, () => true));
    const all = (await collect(streams.store.readAll({ fromSeq: from }))).filter((c) => subjects.includes(c.subject));
    expect(all).toHaveLength(batches * 4);
    for (let i = 0; i < all.length; i += 4) {
      const batch = all.slice(i, i + 4);
      expect(batch.map((c) => c.subject)).toEqual(subjects);
      expect(batch.map((c) => c.seq - (batch[0]?.seq ?? 0))).toEqual([0, 1, 2, 3]);
      expect(new Set(batch.map((c) => c.metadata.commandId)).size).toBe(1);
    }
  });
});
