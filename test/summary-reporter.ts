import type { Reporter, TestModule } from "vitest/node";

/** Ends a run with one plain line, `tests: N passed, N failed, N skipped`, that any log reader can parse. */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: readonly TestModule[]): void {
    const count = { passed: 0, failed: 0, skipped: 0 };
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === "passed" || state === "failed" || state === "skipped") count[state]++;
      }
      // A file that failed to load has no tests to count; it still failed.
      if (module.state() === "failed" && !module.children.size) count.failed++;
    }
    process.stdout.write(`\ntests: ${count.passed} passed, ${count.failed} failed, ${count.skipped} skipped\n`);
  }
}
