import { describe, expect, it } from "vitest";
import { compareVersions, parseVersion, versionProblem } from "./capabilities.js";

describe("server version policy", () => {
  it("parses versions with or without a v and a suffix", () => {
    expect(parseVersion("2.15.1")).toEqual([2, 15, 1]);
    expect(parseVersion("v2.12.0-beta.1")).toEqual([2, 12, 0]);
    expect(parseVersion("nonsense")).toBeUndefined();
  });

  it("orders versions numerically, not as text", () => {
    expect(compareVersions([2, 10, 0], [2, 9, 21])).toBeGreaterThan(0);
    expect(compareVersions([2, 12, 9], [2, 12, 10])).toBeLessThan(0);
    expect(compareVersions([2, 15, 1], [2, 15, 1])).toBe(0);
  });

  it("accepts 2.12 and newer", () => {
    expect(versionProblem("2.12.0")).toBeUndefined();
    expect(versionProblem("2.15.1")).toBeUndefined();
    expect(versionProblem("3.0.0")).toBeUndefined();
  });

  it("refuses servers without atomic batch publish, saying what is needed", () => {
    expect(versionProblem("2.10.27")).toMatch(/2\.10\.27 is too old: foldline needs 2\.12 or newer.*atomic batch/);
    expect(versionProblem("2.11.9")).toMatch(/too old/);
    expect(versionProblem("2.11.0")).toMatch(/too old/);
    expect(versionProblem("2.9.21")).toMatch(/too old/);
  });

  it("refuses an unreadable version", () => {
    expect(versionProblem("")).toMatch(/unreadable/);
  });
});
