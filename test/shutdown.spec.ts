import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ExecuteRequestSchema } from "../gen/foldline/marketplace/v1/command_service_pb.js";
import { clients, startTestApp } from "./harness/app.js";
import { startTestNats, type TestNats } from "./harness/nats.js";

let nats: TestNats;

beforeAll(async () => {
  nats = await startTestNats();
});
afterAll(async () => {
  await nats.stop();
});

describe("graceful shutdown", () => {
  it("finishes the commands in flight, refuses new ones, and every answered command is in the stream", async () => {
    const app = await startTestApp(nats);
    const { wallet, commands } = clients(app.url);
    const wallets = Array.from({ length: 16 }, (_, i) => `sd-${i}-${randomUUID()}`);
    await Promise.all(wallets.map((walletId) => wallet.openWallet({ metadata: { commandId: randomUUID() }, walletId, ownerId: "ada" })));

    // Unary callers that keep sending until the server goes away.
    const answered: string[] = [];
    const refusals: Code[] = [];
    let stopAt = Number.POSITIVE_INFINITY;
    const caller = async (walletId: string): Promise<void> => {
      while (Date.now() < stopAt) {
        const commandId = randomUUID();
        try {
          await wallet.deposit({ metadata: { commandId }, walletId, amountCents: 1n });
          answered.push(commandId);
        } catch (err) {
          refusals.push(ConnectError.from(err).code);
          return;
        }
      }
    };
    // A stream client that sends a command whenever one is answered, without ever ending its side.
    const streamed: string[] = [];
    let streamError: Code | undefined;
    const streamClient = async (): Promise<void> => {
      const sent: string[] = [];
      let release: (() => void) | undefined;
      async function* requests(): AsyncGenerator<MessageInitShape<typeof ExecuteRequestSchema>> {
        for (let i = 0; ; i++) {
          while (sent.length - streamed.length >= 32) await new Promise<void>((r) => (release = r));
          const commandId = randomUUID();
          sent.push(commandId);
          yield { command: { case: "deposit", value: { metadata: { commandId }, walletId: wallets[i % wallets.length] ?? "", amountCents: 1n } } };
        }
      }
      try {
        for await (const answer of commands.execute(requests())) {
          expect(answer.outcome.case).toBe("deposit");
          const id = sent[streamed.length];
          if (id !== undefined) streamed.push(id);
          release?.();
        }
      } catch (err) {
        streamError = ConnectError.from(err).code;
      }
    };

    const callers = [...wallets.map(caller), streamClient()];
    while (answered.length < 100 || streamed.length < 100) await new Promise((r) => setTimeout(r, 10));
    const answeredBefore = answered.length;
    const closing = Date.now();
    await app.close();
    const closeMs = Date.now() - closing;
    stopAt = Date.now();
    await Promise.all(callers);

    // Every caller finished: answered, refused as unavailable, or cut off with the connection. None hangs.
    for (const code of refusals) expect([Code.Unavailable, Code.Canceled, Code.Internal, Code.Unknown]).toContain(code);
    expect(streamError).toBe(Code.Unavailable);
    // The drain ended because nothing was left in flight, not because its 5 s bound cut requests off.
    expect(closeMs).toBeLessThan(4_000);
    expect(answered.length).toBeGreaterThanOrEqual(answeredBefore);

    // Every answered command, unary or streamed, is in the stream exactly once.
    await using reader = await startTestApp(nats);
    const committed = new Map<string, number>();
    for await (const commit of reader.streams.store.readAll({ subjectFilter: "ev.wallet.>" })) {
      committed.set(commit.metadata.commandId, (committed.get(commit.metadata.commandId) ?? 0) + 1);
    }
    for (const id of [...answered, ...streamed]) expect(committed.get(id)).toBe(1);
  });
});
