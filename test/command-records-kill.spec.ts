// A command's record travels with its commit in one atomic batch: an API server killed with `kill -9` at any
// moment under load leaves, for every command id, both or neither, and every repeat, on a fresh server after a
// restart of everything too, answers what the first execution answered.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";
import { decodeRecord } from "../commands/command-records.js";
import {
  DepositResponseSchema,
  WithdrawResponseSchema,
  type DepositResponse,
  type WithdrawResponse,
} from "../gen/foldline/marketplace/v1/wallet_service_pb.js";
import { decodeCommit } from "../streams/commit-codec.js";
import { clients } from "./harness/app.js";
import { startApiServer, type NpmProcess } from "./harness/npm-process.js";
import { startTestNats, type TestNats } from "./harness/nats.js";

const dir = mkdtempSync(join(tmpdir(), "foldline-records-kill-"));
let nats: TestNats | undefined;
const servers: NpmProcess[] = [];
afterAll(async () => {
  try {
    await Promise.all(servers.map((s) => s.killAll()));
  } finally {
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

const startServer = (url: string) => startApiServer(url, dir, servers);

interface Sent {
  readonly walletId: string;
  readonly commandId: string;
  readonly amountCents: bigint;
  readonly withdraw: boolean;
  answer?: DepositResponse | WithdrawResponse;
}

/** The answer's bytes on the wire. */
const bytes = (s: Sent, answer: DepositResponse | WithdrawResponse): Buffer =>
  Buffer.from(
    s.withdraw
      ? toBinary(WithdrawResponseSchema, answer as WithdrawResponse)
      : toBinary(DepositResponseSchema, answer as DepositResponse),
  );

/** Runs `task` on every item, 32 at a time. */
async function inParallel<T>(items: readonly T[], task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await task(items[next++] as T);
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

/** Every message of the stream, in order: records and commits, read directly. */
async function readStream(url: string): Promise<{ seq: number; subject: string; data: Uint8Array }[]> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info("EVENTS")).state.last_seq;
    const consumer = await jetstream(nc).consumers.get("EVENTS", { deliver_policy: DeliverPolicy.All });
    const out: { seq: number; subject: string; data: Uint8Array }[] = [];
    for await (const m of await consumer.consume()) {
      out.push({ seq: m.seq, subject: m.subject, data: m.data });
      if (m.seq >= last) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

describe("command records under kill -9", () => {
  it("leaves every command id with its record and commit together, or neither, and answers repeats the same", async () => {
    nats = await startTestNats();
    let { server, api } = await startServer(nats.url);
    const c0 = clients(api);
    const wallets = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const walletId = `kill-${i}-${randomUUID()}`;
        await c0.wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId, ownerId: `o${i}` });
        return walletId;
      }),
    );

    const sent: Sent[] = [];
    const send = (s: Sent, url: string): Promise<DepositResponse | WithdrawResponse> => {
      const { wallet } = clients(url);
      const request = { metadata: { commandId: s.commandId }, walletId: s.walletId, amountCents: s.amountCents };
      return s.withdraw ? wallet.withdraw(request) : wallet.deposit(request);
    };
    let running = true;
    const caller = async (n: number): Promise<void> => {
      for (let i = 0; running; i++) {
        const s: Sent = { walletId: wallets[(n + i) % wallets.length] ?? "", commandId: randomUUID(), amountCents: BigInt(1 + (i % 5)), withdraw: i % 3 === 2 };
        sent.push(s);
        try {
          s.answer = await send(s, api);
        } catch {
          await sleep(100); // the server is down, or a refusal: the command is retried at the end
        }
      }
    };
    const callers = Array.from({ length: 32 }, (_, n) => caller(n));
    for (let kill = 0; kill < 5; kill++) {
      await sleep(400 + kill * 150);
      process.kill(Number(server.child.pid), "SIGKILL");
      await server.killAll();
      ({ server, api } = await startServer(nats.url));
    }
    await sleep(300);
    running = false;
    await Promise.all(callers);

    // Every command not answered is sent again, with its id, until it is: executed once, or refused.
    await inParallel(sent.filter((x) => x.answer === undefined), async (s) => {
      try {
        s.answer = await send(s, api);
      } catch (err) {
        expect(ConnectError.from(err).code, ConnectError.from(err).message).toBe(Code.FailedPrecondition);
      }
    });
    const answered = sent.filter((s) => s.answer !== undefined);
    expect(answered.length).toBeGreaterThan(200);

    const messages = await readStream(nats.url);
    const records = new Map<string, { seq: number; commits: number }>();
    const commitsOf = new Map<string, number[]>();
    for (const m of messages) {
      if (m.subject.startsWith("cmd.")) {
        const id = m.subject.slice(4);
        expect(records.has(id), `two records of ${id}`).toBe(false);
        records.set(id, { seq: m.seq, commits: decodeRecord(m.data).commits });
      } else if (m.subject.startsWith("ev.")) {
        const id = decodeCommit(m.data).metadata.commandId;
        commitsOf.set(id, [...(commitsOf.get(id) ?? []), m.seq]);
      }
    }
    // Both or neither: each record is followed by exactly its commits, and each commit has its record before it.
    for (const [id, record] of records) {
      expect(commitsOf.get(id) ?? [], `the commits of ${id}`).toEqual(Array.from({ length: record.commits }, (_, i) => record.seq + 1 + i));
    }
    for (const id of commitsOf.keys()) expect(records.has(id), `a commit of ${id} without its record`).toBe(true);
    // Every acknowledged command is in the stream once, where its answer says.
    for (const s of answered) {
      const record = records.get(s.commandId);
      expect(record, `the record of acknowledged ${s.commandId}`).toBeDefined();
      expect(Number(s.answer?.result?.position)).toBe((record?.seq ?? 0) + 1);
    }

    // A restart of everything later, a repeat still answers byte for byte what the first execution answered.
    await server.killAll();
    await nats.kill();
    await nats.restart();
    ({ api } = await startServer(nats.url));
    await inParallel(answered.filter((_, i) => i % 10 === 0), async (s) => {
      const again = await send(s, api);
      expect(bytes(s, again).equals(bytes(s, s.answer as DepositResponse))).toBe(true);
    });
    expect((await readStream(nats.url)).length).toBe(messages.length);
  }, 120_000);
});
