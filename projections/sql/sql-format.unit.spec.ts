import { describe, expect, it } from "vitest";
import { formatSqlTable, type SqlTable } from "./sql-format.js";

const table: SqlTable = {
  columns: ["id", "name", "rate", "avatar", "id"],
  rows: [
    [1n, "alice", 0.25, Uint8Array.of(0, 255), 9007199254740993n],
    [null, 'say "hi", then\nleave', 2, null, -3n],
  ],
};

describe("formatSqlTable", () => {
  it("aligns a text table: numbers right, NULL shown, control characters escaped, a row count", () => {
    expect(formatSqlTable(table, "table")).toBe(
      [
        "id   | name                  | rate | avatar  | id",
        "-----+-----------------------+------+---------+-----------------",
        "   1 | alice                 | 0.25 | x'00ff' | 9007199254740993",
        'NULL | say "hi", then\\nleave |  2.0 | NULL    |               -3',
        "(2 rows)",
        "",
      ].join("\n"),
    );
  });

  it("writes RFC 4180 CSV: CRLF records, quoted fields with doubled quotes, NULL as an empty field", () => {
    expect(formatSqlTable(table, "csv")).toBe(
      "id,name,rate,avatar,id\r\n" +
        "1,alice,0.25,x'00ff',9007199254740993\r\n" +
        ',"say ""hi"", then\nleave",2.0,,-3\r\n',
    );
  });

  it("writes JSON objects: safe integers as numbers, others as strings, blobs as base64, repeated names suffixed", () => {
    expect(JSON.parse(formatSqlTable(table, "json"))).toEqual([
      { id: 1, name: "alice", rate: 0.25, avatar: "AP8=", id_2: "9007199254740993" },
      { id: null, name: 'say "hi", then\nleave', rate: 2, avatar: null, id_2: -3 },
    ]);
  });

  it("prints a header and no rows for an empty result", () => {
    const empty: SqlTable = { columns: ["a"], rows: [] };
    expect(formatSqlTable(empty, "table")).toBe("a\n-\n(0 rows)\n");
    expect(formatSqlTable(empty, "csv")).toBe("a\r\n");
    expect(formatSqlTable(empty, "json")).toBe("[]\n");
  });
});
