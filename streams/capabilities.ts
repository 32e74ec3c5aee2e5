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
import { createJsPublisher, type JsPublisher, type PubAck } from "./js-publisher.js";
import { eventSubjects, reconcileStream, recordSubjects } from "./topology.js";

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
 * it does not know, so this reads the configuration back rather than trusting what was sent. Throws a
 * CapabilityError naming every missing setting.
 */
export async function checkEventStream(jsm: JetStreamManager, settings: EventStreamSettings): Promise<void> {
  const config: StreamConfig = (await jsm.streams.info(settings.name)).config;
  const missing: string[] = [];
  for (const subjects of [eventSubjects, recordSubjects]) {
    if (!config.subjects.includes(subjects)) missing.push(`subjects include ${subjects}`);
  }
  if (config.storage !== StorageType.File) missing.push("file storage");
  if (!config.deny_delete) missing.push("deny_delete");
  if (!config.deny_purge) missing.push("deny_purge");
  if (!config.allow_direct) missing.push("allow_direct");
  if (!config.allow_atomic) missing.push("allow_atomic (atomic batch publish, nats-server 2.12 or newer)");
  if (config.allow_rollup_hdrs) missing.push("no rollups (allow_rollup_hdrs false)");
  if (config.sealed) missing.push("not sealed");
  if (config.duplicate_window !== nanos(settings.duplicateWindowMs)) {
    missing.push(`duplicate_window ${settings.duplicateWindowMs} ms`);
  }
  if (config.num_replicas !== settings.replicas) missing.push(`${settings.replicas} replicas`);
  if (missing.length > 0) {
    // foldline declares all of these at start-up (applyTopology), so a setting still missing was dropped by the
    // server, or changed by someone else since.
    throw new CapabilityError(
      `stream ${settings.name} lacks what foldline needs: ${missing.join(", ")}; run nats-server 2.12 or newer ` +
        `and let foldline declare the stream at start-up, or set these on the stream`,
    );
  }
}

/**
 * The subject of the write probe of the event stream `streamName`, on its probe stream (small, old messages
 * discarded), which {@link probeAppendGuarantees} declares: a message there is a real write with the event
 * stream's storage and replicas.
 */
export function writeProbeSubject(streamName: string): string {
  return `foldline.probe.${streamName}.writes`;
}

/** The probe stream of the event stream: its storage, replicas and `allow_atomic`, its own subjects, small. */
function probeStreamConfig(settings: EventStreamSettings): Partial<StreamConfig> & { name: string } {
  return {
    name: `${settings.name}_PROBE`,
    subjects: [`foldline.probe.${settings.name}.>`],
    storage: StorageType.File,
    num_replicas: settings.replicas,
    max_msgs: 1_000,
    max_age: nanos(3_600_000),
    duplicate_window: nanos(60_000),
    discard: DiscardPolicy.Old,
    allow_atomic: true,
  };
}

/** JSAtomicPublishDisabledErr (ADR-50): an atomic batch sent to a stream without `allow_atomic`. */
const atomicPublishDisabled = 10174;

/**
 * Proves on the probe stream (declared here, or brought in line: same storage and replicas as the event stream,
 * `allow_atomic`, its own subjects, old messages discarded) what appends rely on, with real writes:
 * (a) a stale expected subject sequence is refused; (b) an atomic batch whose second message carries a wrong
 * expected subject sequence is refused whole, nothing of it stored; (c) the same batch with right guards is
 * stored whole and consecutively; (d) an expected last sequence over a wildcard subject
 * (`Nats-Expected-Last-Subject-Sequence-Subject`) is enforced. Throws a CapabilityError saying what the server
 * got wrong, also when it did not keep `allow_atomic` on the probe stream (a server too old to know it).
 * Never relies on how a server orders its checks (duplicate message id against a stale guard differs between
 * versions).
 */
export async function probeAppendGuarantees(
  nc: NatsConnection,
  jsm: JetStreamManager,
  settings: EventStreamSettings,
  timeoutMs: number,
): Promise<void> {
  const declared = probeStreamConfig(settings);
  await reconcileStream(jsm, declared, async () => {
    await jsm.streams.add(declared);
  });
  const version = nc.info?.version ?? "?";
  if (!(await jsm.streams.info(declared.name)).config.allow_atomic) {
    throw new CapabilityError(
      `nats-server ${version} did not keep allow_atomic on the probe stream ${declared.name}, so it has no ` +
        `atomic batch publish; foldline needs nats-server 2.12 or newer: upgrade the server`,
    );
  }
  const publisher = createJsPublisher(nc, timeoutMs);
  try {
    const probe: Probe = {
      publisher,
      jsm,
      stream: declared.name,
      // A prefix of this run's own: other foldline processes probe and health-check on the same stream meanwhile,
      // and the wildcard condition must see only this run's writes.
      run: `foldline.probe.${settings.name}.${nuid.next()}`,
      refuse: (what) => {
        throw new CapabilityError(
          `nats-server ${version} ${what}; foldline relies on this and cannot run safely on it ` +
            `(run nats-server 2.12 or newer)`,
        );
      },
    };
    const firstSeq = await proveSubjectGuard(probe);
    const batchSeq = await proveAtomicBatch(probe, firstSeq);
    await proveWildcardGuard(probe, batchSeq);
  } finally {
    publisher.close();
  }
}

/** What the steps of {@link probeAppendGuarantees} share. */
interface Probe {
  readonly publisher: JsPublisher;
  readonly jsm: JetStreamManager;
  readonly stream: string;
  /** The subject prefix of this run; every subject the run writes is `<run>.<token>`. */
  readonly run: string;
  /** Throws the CapabilityError for a server that does not do `what` the design needs. */
  readonly refuse: (what: string) => never;
}

const empty = new Uint8Array(0);

/**
 * Resolves when `attempt` is refused with 10071 (a failed sequence guard); calls `refuse` with `accepted` when it
 * is stored. A batch refused because the stream has no `allow_atomic` is a CapabilityError; anything else the
 * server answers is rethrown.
 */
async function expectConflict(probe: Probe, attempt: Promise<PubAck>, accepted: string): Promise<void> {
  try {
    await attempt;
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence) return;
    if (err instanceof JetStreamApiError && err.code === atomicPublishDisabled) {
      throw new CapabilityError(
        `the probe stream ${probe.stream} refuses atomic batches (API code ${err.code}): give it allow_atomic, ` +
          `on nats-server 2.12 or newer`,
        { cause: err },
      );
    }
    throw err;
  }
  probe.refuse(accepted);
}

/** The stream sequence of `subject`'s last message, 0 when it has none (read from the stream leader). */
async function lastSeq(probe: Probe, subject: string): Promise<number> {
  return (await probe.jsm.streams.getMessage(probe.stream, { last_by_subj: subject }))?.seq ?? 0;
}

/** (a) A stale expected subject sequence is refused. Returns the sequence of the one write that was right. */
async function proveSubjectGuard(probe: Probe): Promise<number> {
  const subject = `${probe.run}.one`;
  const first = await probe.publisher.publish(subject, empty, { expectedLastSubjectSeq: 0 });
  await expectConflict(
    probe,
    probe.publisher.publish(subject, empty, { expectedLastSubjectSeq: 0 }),
    `accepted a write whose expected subject sequence 0 was stale`,
  );
  return first.seq;
}

/**
 * (b) and (c) on two fresh subjects: a batch whose second message expects `wrongSeq` (not its subject's last) is
 * refused whole, and then the batch with right guards is stored whole, consecutively and in order. Returns the
 * stream sequence of that batch's last message.
 */
async function proveAtomicBatch(probe: Probe, wrongSeq: number): Promise<number> {
  const a = `${probe.run}.a`;
  const b = `${probe.run}.b`;
  await expectConflict(
    probe,
    probe.publisher.publishBatch([
      { subject: a, data: empty, guards: { expectedLastSubjectSeq: 0 } },
      { subject: b, data: empty, guards: { expectedLastSubjectSeq: wrongSeq } },
    ]),
    "accepted an atomic batch whose second message had a stale expected subject sequence",
  );
  if ((await lastSeq(probe, a)) !== 0) {
    probe.refuse("stored the first message of an atomic batch it refused: it does not publish batches atomically");
  }
  const ack = await probe.publisher.publishBatch([
    { subject: a, data: empty, guards: { expectedLastSubjectSeq: 0 } },
    { subject: b, data: empty, guards: { expectedLastSubjectSeq: 0 } },
  ]);
  if (ack.count !== 2) probe.refuse(`acknowledged an atomic batch of 2 messages with count ${ack.count ?? "none"}`);
  const stored = [await lastSeq(probe, a), await lastSeq(probe, b)];
  if (stored[0] !== ack.seq - 1 || stored[1] !== ack.seq) {
    probe.refuse(`stored an atomic batch acknowledged at ${ack.seq} at sequences ${stored.join(" and ")}`);
  }
  return ack.seq;
}

/**
 * (d) The condition on the last message of `<run>.*`, which is at `last`: a write expecting the sequence before
 * it is refused, one expecting `last` is stored. Both write to the subject whose own last message is at
 * `last - 1`, so a server that ignored the wildcard header and checked that subject would answer both the other
 * way.
 */
async function proveWildcardGuard(probe: Probe, last: number): Promise<void> {
  const subject = `${probe.run}.a`;
  const wildcard = `${probe.run}.*`;
  await expectConflict(
    probe,
    probe.publisher.publish(subject, empty, { expectedLastSubjectSeq: last - 1, expectedLastSubjectSeqSubject: wildcard }),
    "accepted a write whose expected last sequence of a wildcard subject was stale",
  );
  try {
    await probe.publisher.publish(subject, empty, { expectedLastSubjectSeq: last, expectedLastSubjectSeqSubject: wildcard });
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamWrongLastSequence) throw err;
    probe.refuse("refused a write whose expected last sequence of a wildcard subject was right");
  }
}
