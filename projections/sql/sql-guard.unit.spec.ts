import { describe, expect, it } from "vitest";
import { firstKeyword, refusalForKeyword } from "./sql-guard.js";

describe("firstKeyword", () => {
  it.each([
    ["SELECT 1", "SELECT"],
    ["  \n\tselect 1", "SELECT"],
    ["-- a note\nATTACH 'x' AS y", "ATTACH"],
    ["/* a\nblock */ pragma table_info(t)", "PRAGMA"],
    ["/**/--\n/* */ ;; Detach x", "DETACH"],
    ["with r AS (SELECT 1) DELETE FROM t", "WITH"],
    ["(SELECT 1)", ""],
  ])("%j starts with %j", (sql, keyword) => {
    expect(firstKeyword(sql)).toBe(keyword);
  });

  it.each(["", "   ", ";", "-- only a comment", "/* unterminated SELECT 1", "-- x\n/* y */ ;"])("%j holds no statement", (sql) => {
    expect(firstKeyword(sql)).toBeUndefined();
  });
});

describe("refusalForKeyword", () => {
  it.each(["ATTACH", "DETACH", "PRAGMA", "VACUUM", "REINDEX", "ANALYZE"])("refuses %s whatever follows", (keyword) => {
    expect(refusalForKeyword(keyword)).toMatch(new RegExp(`^${keyword} is refused`));
  });

  it("says that a PRAGMA that only reads is refused too, and what to use instead", () => {
    expect(refusalForKeyword("PRAGMA")).toContain("even a PRAGMA that only reads");
    expect(refusalForKeyword("PRAGMA")).toContain("pragma_table_info");
  });

  it.each(["SELECT", "WITH", "VALUES", "EXPLAIN", "", "CONSTRUCTOR", "TOSTRING"])("leaves %j to the statement checks", (keyword) => {
    expect(refusalForKeyword(keyword)).toBeUndefined();
  });
});
