import type { Kvm } from "@nats-io/kv";
import type { Logger } from "pino";
import type { OpenStreams } from "../streams/open-streams.js";
import { snapshotsBucket } from "../streams/topology.js";
import { createCommandPipeline, type CommandPipeline } from "./command-pipeline.js";
import type { CommandsConfig } from "./config.js";

/** The command pipeline over the opened streams and the engine's buckets, as `config` tunes it. */
export async function openCommandPipeline(streams: OpenStreams, kvm: Kvm, config: CommandsConfig, log: Logger): Promise<CommandPipeline> {
  const snapshots = await kvm.open(snapshotsBucket);
  return createCommandPipeline({
    store: streams.store,
    snapshotsBucket: snapshots,
    log,
    cacheSize: config.cacheSize,
    snapshotEvery: config.snapshotEvery,
    snapshotAfterColdRead: config.snapshotAfterColdRead,
    maxAttempts: config.maxAttempts,
    commandTimeoutMs: streams.timeoutMs,
  });
}
