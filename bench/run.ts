/**
 * Benchmark runner: `npm run bench` runs every suite, `npm run bench -- <suite>` runs one.
 *
 * Every figure is written to stdout as one JSON line that begins
 * `{"bench":"<name>","value":<n>,"unit":"<unit>","baseline":<n|null>,"ratio":<n|null>}`, optionally followed by
 * extra fields (round figures, sample counts, settings). Nothing else goes to stdout, so the output can be piped
 * straight into a comparison tool; progress and errors go to stderr.
 *
 * A suite measures foldline against a baseline taken in the same process, on the same server and at the same
 * load: the raw client operation that foldline's own operation is built on. `ratio` is `value / baseline`, so
 * it tells how much of the raw capacity foldline keeps (for rates) or how much it adds (for latencies),
 * largely independent of how fast the machine running the benchmark is.
 */

/** One measured figure. */
export interface Figure {
  readonly bench: string;
  readonly value: number;
  readonly unit: string;
  /** The raw operation's figure under the same conditions; null where there is no meaningful one. */
  readonly baseline: number | null;
  /** `value / baseline`, or null without a baseline. */
  readonly ratio: number | null;
  /** Extra fields, printed after the five fixed ones. */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** How a suite reports a figure. */
export type Emit = (figure: Figure) => void;

/** A suite module: it measures, reporting each figure through `emit` as soon as it has it. */
export interface SuiteModule {
  run(emit: Emit): Promise<void>;
}

/** The suites, loaded only when they run. */
const suites: ReadonlyMap<string, () => Promise<SuiteModule>> = new Map([
  ["append", () => import("./append.js")],
  ["commands", () => import("./commands.js")],
  ["projections", () => import("./projections.js")],
]);

/** Writes a figure as one JSON line, the fixed fields first and in order. */
function emit(figure: Figure): void {
  const finite = (n: number | null): number | null => (n === null || !Number.isFinite(n) ? null : n);
  const line = {
    bench: figure.bench,
    value: finite(figure.value),
    unit: figure.unit,
    baseline: finite(figure.baseline),
    ratio: finite(figure.ratio),
    ...figure.extra,
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function main(): Promise<number> {
  const requested = process.argv[2];
  if (requested !== undefined && !suites.has(requested)) {
    process.stderr.write(`bench: unknown suite "${requested}"; suites: ${[...suites.keys()].join(", ")}\n`);
    return 1;
  }
  const selected = [...suites].filter(([name]) => requested === undefined || name === requested);
  for (const [name, load] of selected) {
    const started = performance.now();
    process.stderr.write(`bench: suite ${name}\n`);
    const suite = await load();
    await suite.run(emit);
    process.stderr.write(`bench: suite ${name} done in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  }
  return 0;
}

try {
  process.exitCode = await main();
} catch (err) {
  process.stderr.write(`bench: failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
}
