/** Measuring helpers shared by the benchmark suites. */

/** One operation of one worker; every worker loops its own. */
export type Op = () => Promise<void>;

/**
 * Runs every worker's operation in a loop, one awaited at a time per worker, until `ms` have passed; an
 * operation under way at the deadline is finished and counted. Returns the operations completed per second of
 * the whole run. The first failure stops every worker and is rethrown.
 */
export async function drive(workers: readonly Op[], ms: number, latencies?: number[]): Promise<{ ops: number; rate: number }> {
  const start = performance.now();
  const deadline = start + ms;
  let ops = 0;
  let failed = false;
  const loop = async (op: Op): Promise<void> => {
    try {
      while (!failed && performance.now() < deadline) {
        const t0 = performance.now();
        await op();
        latencies?.push(performance.now() - t0);
        ops++;
      }
    } catch (err) {
      failed = true;
      throw err;
    }
  };
  await Promise.all(workers.map(loop));
  const seconds = (performance.now() - start) / 1_000;
  return { ops, rate: ops / seconds };
}

/** The middle value (the mean of the two middle ones for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  const s = sorted(values);
  const mid = Math.floor(s.length / 2);
  if (s.length === 0) return Number.NaN;
  return s.length % 2 === 1 ? (s[mid] ?? Number.NaN) : ((s[mid - 1] ?? Number.NaN) + (s[mid] ?? Number.NaN)) / 2;
}

/** Nearest-rank percentile of ascending `values`. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const rank = Math.min(values.length, Math.max(1, Math.ceil((p / 100) * values.length)));
  return values[rank - 1] ?? Number.NaN;
}

/** A sorted copy, ascending. */
export function sorted(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

/** `n` rounded to `digits` decimals. */
export function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** A positive whole number from the environment, `fallback` when unset. */
export function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive whole number, got "${v}"`);
  return n;
}

