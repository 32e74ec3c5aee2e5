import { randomUUID } from "node:crypto";
import { walletType } from "../commands/marketplace/wallet-routes.js";
import { encodeCommit } from "../streams/commit-codec.js";

/** Bytes the size of a one-deposit commit: what the raw baselines publish in place of a command's commit. */
export function commitSizedPayload(): Uint8Array {
  const commit = encodeCommit({
    events: [walletType.encodeEvent({ type: "FundsDeposited", amountCents: 1n })],
    metadata: { commandId: randomUUID(), actor: "", correlationId: "", causationId: "", recordedAt: new Date(), aggregateVersion: 2 },
  });
  return new Uint8Array(commit.length).fill(0x61);
}
