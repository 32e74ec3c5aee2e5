import { describe, expect, it } from "vitest";
import { compareVersions, parseVersion, versionProblem } from "./capabilities.js";

describe("server version policy", () => {
  it("parses versions with or without a v and a suffix", () => {
    expect(parseVersion("2.10.27")).toEqual([2, 10, 27]);
    expect(parseVersion("v2.9.21-beta.1")).toEqual([2, 9, 21]);
    expect(parseVersion("nonsense")).toBeUndefined();
  });

  it("orders versions numerically, not as text", () => {
    expect(compareVersions([2, 10, 0], [2, 9, 21])).toBeGreaterThan(0);
    expect(compareVersions([2, 9, 9], [2, 9, 21])).toBeLessThan(0);
    expect(compareVersions([2, 9, 21], [2, 9, 21])).toBe(0);
  });

  it("accepts 2.10 with any replica count", () => {
    expect(versionProblem("2.10.27", 1, false)).toBeUndefined();
    expect(versionProblem("2.10.27", 3, false)).toBeUndefined();
  });

  it("accepts 2.9.10 with one replica", () => {
    expect(versionProblem("2.9.10", 1, false)).toBeUndefined();
  });

  it("refuses replicas on servers before 2.9.21, citing the issue", () => {
    expect(versionProblem("2.9.10", 3, false)).toMatch(/issue 4320/);
    expect(versionProblem("2.9.20", 2, false)).toMatch(/ALLOW_UNSAFE_REPLICAS/);
    expect(versionProblem("2.9.21", 3, false)).toBeUndefined();
  });

  it("lets an explicit override accept the risk", () => {
    expect(versionProblem("2.9.10", 3, true)).toBeUndefined();
  });

  it("refuses servers without direct get and unreadable versions", () => {
    expect(versionProblem("2.8.4", 1, false)).toMatch(/too old/);
    expect(versionProblem("", 1, false)).toMatch(/unreadable/);
  });
});
