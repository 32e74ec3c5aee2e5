import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";

/** A lease on a KV key: at most one holder at a time, taken over when its holder stops renewing it. */
export interface Lease {
  /**
   * Resolves once this process holds the lease (at once when it already does); rejects with `signal`'s reason
   * when it aborts first.
   */
  acquire(signal: AbortSignal): Promise<void>;
  /** True while held (renewals succeeding). */
  held(): boolean;
  /** Called once when a held lease is lost (another holder took it, or renewals kept failing for a whole ttl). */
  onLost(listener: () => void): void;
  /** Stops renewing and removes the key if still ours, so that a standby takes over at once. */
  release(): Promise<void>;
}

/** A lease holder's name for this process: host, pid and a random part, unique across restarts. */
export function leaseOwner(): string {
  return `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
}

/** Options of {@link createLease}. */
export interface LeaseOptions {
  /** The `foldline-leases` bucket. */
  readonly kv: KV;
  /** The key: one lease per key. */
  readonly key: string;
  /** Who holds it: any unique string (process id, host, random). */
  readonly owner: string;
  /** A holder that has not renewed for this long is presumed dead. */
  readonly ttlMs: number;
  readonly log: Logger;
}

/**
 * Creates a lease. Nothing compares clocks across machines: the holder rewrites the key every `ttlMs / 3` with a
 * compare-and-set on its revision, and a contender takes over, again with a compare-and-set, only after it has
 * itself seen the key's revision stand still for `ttlMs`. A holder whose renewal fails the compare-and-set has
 * been taken over and reports the loss at once; one whose renewals fail for other reasons (NATS away) reports it
 * after `ttlMs`, the earliest a contender could have taken over.
 */
export function createLease(options: LeaseOptions): Lease {
  const { kv, key, owner, ttlMs, log } = options;
  const value = new TextEncoder().encode(JSON.stringify({ owner }));
  let revision = 0;
  let holding = false;
  let renewer: NodeJS.Timeout | undefined;
  let lastRenewal = 0;
  const lostListeners: (() => void)[] = [];
  const isWrongLast = (err: unknown): boolean =>
    err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence;

  const lose = (why: string): void => {
    if (!holding) return;
    holding = false;
    clearInterval(renewer);
    log.warn({ key, owner, why }, "lease lost");
    for (const listener of lostListeners) listener();
  };

  let renewing = false;
  const renew = async (): Promise<void> => {
    if (renewing) return; // one at a time: two with the same revision would refuse each other
    renewing = true;
    try {
      revision = await kv.update(key, value, revision);
      lastRenewal = Date.now();
    } catch (err) {
      if (isWrongLast(err)) lose("another holder took it over");
      else if (Date.now() - lastRenewal >= ttlMs) lose(`renewals failed for ${ttlMs} ms`);
    } finally {
      renewing = false;
    }
  };

  /** One attempt: true when the lease is ours now. `seen` tracks the revision and since when it stood still. */
  const attempt = async (seen: { revision: number; since: number }): Promise<boolean> => {
    const entry = await kv.get(key);
    if (entry === null || entry.operation !== "PUT") {
      try {
        revision = entry === null ? await kv.create(key, value) : await kv.update(key, value, entry.revision);
        return true;
      } catch (err) {
        if (isWrongLast(err)) return false;
        throw err;
      }
    }
    if (entry.revision !== seen.revision) {
      seen.revision = entry.revision;
      seen.since = Date.now();
      return false;
    }
    if (Date.now() - seen.since < ttlMs) return false;
    try {
      revision = await kv.update(key, value, entry.revision);
      log.info({ key, owner, previous: entry.string() }, "lease taken over from a holder that stopped renewing");
      return true;
    } catch (err) {
      if (isWrongLast(err)) return false;
      throw err;
    }
  };

  return {
    async acquire(signal) {
      if (holding) return;
      const seen = { revision: -1, since: Date.now() };
      const pollMs = Math.max(20, Math.floor(ttlMs / 4));
      for (;;) {
        signal.throwIfAborted();
        let ours = false;
        try {
          ours = await attempt(seen);
        } catch (err) {
          log.warn({ err, key }, "lease attempt failed; trying again");
        }
        if (ours) break;
        await new Promise((resolve) => setTimeout(resolve, pollMs));
      }
      holding = true;
      lastRenewal = Date.now();
      renewer = setInterval(() => {
        void renew();
      }, Math.max(10, Math.floor(ttlMs / 3)));
      renewer.unref();
    },
    held: () => holding,
    onLost(listener) {
      lostListeners.push(listener);
    },
    async release() {
      if (!holding) return;
      holding = false;
      clearInterval(renewer);
      await kv.delete(key, { previousSeq: revision }).catch((err: unknown) => {
        log.warn({ err, key }, "could not release the lease; a standby takes over after its ttl");
      });
    },
  };
}
