import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  StorageType,
  jetstream,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { jserrors } from "@nats-io/jetstream/internal";
import { nanos, nuid, type NatsConnection } from "@nats-io/transport-node";
import type { EventStreamSettings } from "./config.js";
import { CapabilityError } from "./errors.js";
import { eventSubjects, reconcileStream } from "./topology.js";

/** A server version as [major, minor, patch]. */
export type Version = readonly [number, number, number];

/**
 * The oldest server foldline runs on: appends are atomic batches (`allow_atomic`), which arrived in 2.12. Older
 * servers ignore the batch headers and store each message on its own, so a refused commit could leave part of it.
 */
export const minimumVersion: Version = [2, 12, 0];

/** Parses "2.10.27" or "v2.10.27-beta"; undefined when it is not a version. */
export function parseVersion(text: string): Version | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(text.trim());
  return m === null ? undefined : [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** Negative, zero or positive as `a` is older than, the same as, or newer than `b`. */
export function compareVersions(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** Why foldline cannot run on a server of `version`, or undefined when it can. */
export function versionProblem(version: string): string | undefined {
  const v = parseVersion(version);
  if (v === undefined) return `the server reports an unreadable version "${version}"`;
  if (compareVersions(v, minimumVersion) < 0) {
    return (
      `nats-server ${version} is too old: foldline needs 2.12 or newer (2.15 recommended), for atomic batch ` +
      `publish; upgrade the server`
    );
  }
  return undefined;
}

/**
 * The first half of the start-up self-test, before any stream is touched: the server's version (see
 * {@link versionProblem}) and JetStream being enabled for this account. Returns a JetStream manager.
 */
export async function checkServer(nc: NatsConnection, options: { readonly timeoutMs: number }): Promise<JetStreamManager> {
  const version = nc.info?.version ?? "";
  const problem = versionProblem(version);
  if (problem !== undefined) throw new CapabilityError(problem);
  try {
    return await jetstream(nc, { timeout: options.timeoutMs }).jetstreamManager(true);
  } catch (err) {
    if (
      err instanceof jserrors.JetStreamNotEnabled ||
      (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.JetStreamNotEnabledForAccount)
    ) {
      throw new CapabilityError(
        `JetStream is not enabled on nats-server ${version} for this account; start the server with -js ` +
          `(or a jetstream block in its configuration)`,
        { cause: err },
      );
    }
    throw err;
  }
}

/**
 * Checks that the event stream in effect has every setting foldline relies on. A server silently ignores fields
 * it does not know, so this reads the configuration back rather than trusting what was sent.
 */
export async function checkEventStream(jsm: JetStreamManager, settings: EventStreamSettings): Promise<void> {
  const config: StreamConfig = (await jsm.streams.info(settings.name)).config;
  const missing: string[] = [];
  if (!config.subjects.includes(eventSubjects)) missing.push(`subjects include ${eventSubjects}`);
  if (config.storage !== StorageType.File) missing.push("file storage");
  if (!config.deny_delete) missing.push("deny_delete");
  if (!config.deny_purge) missing.push("deny_purge");
  if (!config.allow_direct) missing.push("allow_direct");
  if (config.allow_rollup_hdrs) missing.push("no rollups (allow_rollup_hdrs false)");
  if (config.sealed) missing.push("not sealed");
  if (config.duplicate_window !== nanos(settings.duplicateWindowMs)) {
    missing.push(`duplicate_window ${settings.duplicateWindowMs} ms`);
  }
  if (config.num_replicas !== settings.replicas) missing.push(`${settings.replicas} replicas`);
  if (missing.length > 0) {
    throw new CapabilityError(`stream ${settings.name} lacks what foldline needs: ${missing.join(", ")}`);
  }
}

/**
 * The subject of the write probe of the event stream `streamName`, on its probe stream (small, old messages
 * discarded), which {@link probeConcurrency} declares: a message there is a real write with the event stream's
 * storage and replicas.
 */
export function writeProbeSubject(streamName: string): string {
  return `foldline.probe.${streamName}.writes`;
}

/**
 * Proves on a small probe stream (same storage and replicas as the event stream, its own subjects, old messages
 * discarded) that the server enforces the expected subject sequence and deduplicates by message id before
 * checking it, which retries of an append rely on.
 */
export async function probeConcurrency(
  nc: NatsConnection,
  jsm: JetStreamManager,
  settings: EventStreamSettings,
  timeoutMs: number,
): Promise<void> {
  const probe = {
    name: `${settings.name}_PROBE`,
    subjects: [`foldline.probe.${settings.name}.>`],
    storage: StorageType.File,
    num_replicas: settings.replicas,
    max_msgs: 1_000,
    max_age: nanos(3_600_000),
    duplicate_window: nanos(60_000),
    discard: DiscardPolicy.Old,
  };
  await reconcileStream(jsm, probe, async () => {
    await jsm.streams.add(probe);
  });
  const js = jetstream(nc, { timeout: timeoutMs });
  const subject = `foldline.probe.${settings.name}.${nuid.next()}`;
  const refuse = (what: string): never => {
    throw new CapabilityError(`nats-server ${nc.info?.version ?? "?"} ${what}; foldline cannot run safely on it`);
  };
  const expectConflict = async (expected: number): Promise<void> => {
    try {
      await js.publish(subject, undefined, { expect: { lastSubjectSequence: expected } });
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence) return;
      throw err;
    }
    refuse(`accepted a write whose expected subject sequence ${expected} was stale`);
  };

  const first = await js.publish(subject, undefined, { expect: { lastSubjectSequence: 0 } });
  await expectConflict(0);
  const id = nuid.next();
  const second = await js.publish(subject, undefined, { msgID: id, expect: { lastSubjectSequence: first.seq } });
  await expectConflict(first.seq);
  const retry = await js.publish(subject, undefined, { msgID: id, expect: { lastSubjectSequence: first.seq } });
  if (!retry.duplicate || retry.seq !== second.seq) {
    refuse("did not report a repeated message id as a duplicate of the original");
  }
}
