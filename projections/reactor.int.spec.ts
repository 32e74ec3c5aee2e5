import { randomUUID } from "node:crypto";
import { jetstream } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../app.js";
import { UnavailableError } from "../streams/errors.js";
import type { StoredCommit } from "../streams/event-store.js";
import { leasesBucket, processesBucket } from "../streams/topology.js";
import { clients, startTestApp } from "../test/harness/app.js";
import { startTestNats, type TestNats } from "../test/harness/nats.js";
import { until } from "../test/harness/until.js";
import { createLease } from "./lease.js";
import { createReactor, type ParkedReaction, type Reaction, type Reactor } from "./reactor.js";

const log = pino({ level: process.env.FOLDLINE_TEST_LOG ?? "silent" });
let nats: TestNats;
let app: App;
let kvm: Kvm;
let processes: KV;

beforeAll(async () => {
  nats = await startTestNats();
  app = await startTestApp(nats);
  kvm = new Kvm(jetstream(app.streams.nc));
  processes = await kvm.open(processesBucket);
});
afterAll(async () => {
  // nats-server is stopped even when foldline never started (setup failed) or fails to close.
  try {
    await app.close();
  } finally {
    await nats.stop();
  }
});

/** Opens `count` wallets named `<prefix>-<i>`, each with one deposit: two commits per wallet. */
async function wallets(prefix: string, count: number): Promise<void> {
  const c = clients(app.url);
  for (let i = 0; i < count; i++) {
    const walletId = `${prefix}-${i}`;
    await c.wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId, ownerId: "o" });
    await c.wallet.deposit({ metadata: { commandId: randomUUID() }, walletId, amountCents: 5n });
  }
}

async function reactor(reaction: Reaction, options: { maxAttempts?: number } = {}): Promise<Reactor> {
  const lease = createLease({ kv: await kvm.open(leasesBucket), key: `reactor.${reaction.name}`, owner: randomUUID(), ttlMs: 1_000, log });
  return createReactor({ store: app.streams.store, kv: processes, reaction, lease, log, backoffMs: 5, ...options });
}

describe("a reactor", () => {
  it("reacts to every commit once, in order per key and concurrently across keys, and resumes from its checkpoint", async () => {
    const prefix = `r-${randomUUID().slice(0, 8)}`;
    await wallets(prefix, 20);
    const seen: StoredCommit[] = [];
    let running = 0;
    let overlapped = false;
    const reaction: Reaction = {
      name: `order-${prefix}`,
      subjectFilter: "ev.wallet.*",
      key: (commit) => (commit.subject.startsWith(`ev.wallet.${prefix}-`) ? commit.subject : undefined),
      async react(commit) {
        running++;
        if (running > 1) overlapped = true;
        // Later commits of a key would overtake earlier ones if the runtime let them: the first waits longest.
        await new Promise((resolve) => setTimeout(resolve, commit.metadata.aggregateVersion === 1 ? 20 : 1));
        seen.push(commit);
        running--;
      },
      transient: () => false,
    };
    const head = await app.streams.store.head();
    const first = await reactor(reaction);
    first.start();
    expect(await first.waitFor(head, 20_000)).toBe(true);
    await first.stop();
    expect(seen).toHaveLength(40);
    expect(overlapped).toBe(true);
    for (let i = 0; i < 20; i++) {
      const versions = seen.filter((c) => c.subject === `ev.wallet.${prefix}-${i}`).map((c) => c.metadata.aggregateVersion);
      expect(versions).toEqual([1, 2]);
    }
    expect((await processes.get(`checkpoint.${reaction.name}`))?.json<{ position: number }>().position).toBe(head);

    // A new reactor goes on from the checkpoint: only the new commits.
    await wallets(`${prefix}-more`, 2);
    const second = await reactor(reaction);
    second.start();
    expect(await second.waitFor(await app.streams.store.head(), 20_000)).toBe(true);
    await second.stop();
    expect(seen).toHaveLength(44);
  });

  it("retries a transient failure until it passes, and parks a commit whose reaction keeps failing, then goes on", async () => {
    const prefix = `p-${randomUUID().slice(0, 8)}`;
    await wallets(prefix, 2);
    const attempts = new Map<number, number>();
    const done: string[] = [];
    const reaction: Reaction = {
      name: `park-${prefix}`,
      subjectFilter: "ev.wallet.*",
      key: (commit) => (commit.subject.startsWith(`ev.wallet.${prefix}-`) ? commit.subject : undefined),
      react(commit) {
        const n = (attempts.get(commit.seq) ?? 0) + 1;
        attempts.set(commit.seq, n);
        // The first wallet's open fails for good; its deposit fails twice as if NATS were away, then passes.
        if (commit.subject.endsWith("-0") && commit.metadata.aggregateVersion === 1) throw new Error("cannot apply");
        if (commit.subject.endsWith("-0") && n <= 2) throw new UnavailableError("NATS away");
        done.push(`${commit.subject}@${commit.metadata.aggregateVersion}`);
        return Promise.resolve();
      },
      transient: (err) => err instanceof UnavailableError,
    };
    const r = await reactor(reaction, { maxAttempts: 3 });
    r.start();
    expect(await r.waitFor(await app.streams.store.head(), 20_000)).toBe(true);
    await until("the status to count the parked commit", () => r.status().parked === 1);
    await r.stop();
    expect(done.sort()).toEqual([`ev.wallet.${prefix}-0@2`, `ev.wallet.${prefix}-1@1`, `ev.wallet.${prefix}-1@2`]);
    const parkedSeq = [...attempts].find(([, n]) => n === 3)?.[0] ?? 0;
    const parked = (await processes.get(`parked.${reaction.name}.${parkedSeq}`))?.json<ParkedReaction>();
    expect(parked).toMatchObject({ subject: `ev.wallet.${prefix}-0`, seq: parkedSeq, error: "cannot apply", attempts: 3 });
    expect(r.status()).toMatchObject({ reaction: reaction.name, state: "stopped", parked: 1 });
  });
});
