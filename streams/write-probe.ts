import type { NatsConnection } from "@nats-io/transport-node";
import type { JsPublisher } from "./js-publisher.js";

/** What a {@link watchWrites} probe found. */
export interface WriteProbeResult {
  readonly writable: boolean;
  /** Why the last probe failed, when it did. */
  readonly error?: unknown;
}

/** Options of {@link watchWrites}. */
export interface WriteProbeOptions {
  readonly nc: NatsConnection;
  /** Publishes with acknowledgement, failing after the NATS timeout. */
  readonly publisher: JsPublisher;
  /** A subject of a stream with bounded retention (see `writeProbeSubject`). */
  readonly subject: string;
  /** Time between the end of one probe and the start of the next. */
  readonly intervalMs: number;
  /** Hears every change of the result, and the first one. */
  readonly onChange: (result: WriteProbeResult) => void;
}

/**
 * Watches whether JetStream takes writes: publishes an empty message with acknowledgement every `intervalMs`, at
 * once after a reconnect, and reports not writable at once when the connection is lost. A probe answers within
 * the publisher's timeout, so a server that stops answering (paused, overloaded, out of disk) is reported within
 * `intervalMs` plus that timeout. Stop it before closing the connection.
 */
export function watchWrites(options: WriteProbeOptions): { stop(): void } {
  const { nc, publisher, subject, intervalMs, onChange } = options;
  let stopped = false;
  // A call: the loop below reads it after awaits, which narrowing does not see through.
  const isStopped = (): boolean => stopped;
  let last: boolean | undefined;
  let timer: NodeJS.Timeout | undefined;
  // Each probe's number: only the latest one reports (a probe sent before a reconnect may never be answered).
  let latest = 0;
  const report = (result: WriteProbeResult): void => {
    if (stopped || result.writable === last) return;
    last = result.writable;
    onChange(result);
  };
  const probe = (): void => {
    clearTimeout(timer);
    if (stopped) return;
    const n = ++latest;
    publisher.publish(subject, new Uint8Array(0)).then(
      () => {
        if (n === latest) report({ writable: true });
      },
      (error: unknown) => {
        if (n === latest) report({ writable: false, error });
      },
    ).finally(() => {
      if (n === latest && !stopped) timer = setTimeout(probe, intervalMs).unref();
    });
  };
  void (async () => {
    for await (const status of nc.status()) {
      if (isStopped()) return;
      if (status.type === "disconnect") report({ writable: false, error: new Error("the NATS connection is lost") });
      else if (status.type === "reconnect") probe();
    }
  })();
  probe();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
