import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { createSqlTestDb } from "./sql-test-db.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const db = createSqlTestDb();
afterAll(() => {
  db[Symbol.dispose]();
});

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node --import tsx sql-main.ts …args` as `npm run sql -- …args` would, on `file`. */
function sql(args: readonly string[], file = db.file): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "sql-main.ts", ...args],
      { cwd: repo, env: { ...process.env, READ_MODEL_DB: file }, timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err !== null && typeof err.code !== "number") reject(new Error("sql-main.ts did not run", { cause: err }));
        else resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr });
      },
    );
  });
}

const wallets = "SELECT wallet_id, owner_id, balance_cents, rate, note, avatar FROM wallets ORDER BY wallet_id";

describe("npm run sql", () => {
  it("prints an aligned table by default", async () => {
    const { code, stdout, stderr } = await sql([wallets]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(stdout).toBe(
      [
        "wallet_id | owner_id | balance_cents       | rate | note            | avatar",
        "----------+----------+---------------------+------+-----------------+----------",
        "w1        | alice    |                1500 | 0.25 | first, \"quoted\" | x'00ff10'",
        "w2        | bob      | 9223372036854775807 |  2.0 | NULL            | NULL",
        "w3        | NULL     |                  -7 | NULL | line1\\nline2    | x''",
        "(3 rows)",
        "",
      ].join("\n"),
    );
  });

  it("prints CSV", async () => {
    const { code, stdout } = await sql(["--format", "csv", wallets]);
    expect(code).toBe(0);
    expect(stdout).toBe(
      "wallet_id,owner_id,balance_cents,rate,note,avatar\r\n" +
        "w1,alice,1500,0.25,\"first, \"\"quoted\"\"\",x'00ff10'\r\n" +
        "w2,bob,9223372036854775807,2.0,,\r\n" +
        "w3,,-7,,\"line1\nline2\",x''\r\n",
    );
  });

  it("prints JSON, with integers beyond 2^53 as strings", async () => {
    const { code, stdout } = await sql(["--format", "json", wallets]);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual([
      { wallet_id: "w1", owner_id: "alice", balance_cents: 1500, rate: 0.25, note: 'first, "quoted"', avatar: "AP8Q" },
      { wallet_id: "w2", owner_id: "bob", balance_cents: "9223372036854775807", rate: 2, note: null, avatar: null },
      { wallet_id: "w3", owner_id: null, balance_cents: -7, rate: null, note: "line1\nline2", avatar: "" },
    ]);
  });

  it("says on stderr that rows were left out", async () => {
    const { code, stdout, stderr } = await sql(["--format", "csv", "--max-rows", "2", "SELECT n FROM numbers ORDER BY n"]);
    expect(code).toBe(0);
    expect(stdout).toBe("n\r\n1\r\n2\r\n");
    expect(stderr).toBe("truncated: the statement has more than 2 rows; only the first 2 are shown (--max-rows, at most 10000)\n");
  });

  it("exits 1 with the reason on stderr for a refusal, and changes nothing", async () => {
    const before = db.hash();
    const { code, stdout, stderr } = await sql(["DELETE FROM wallets"]);
    expect({ code, stdout }).toEqual({ code: 1, stdout: "" });
    expect(stderr).toBe("DELETE refused: the statement writes to the database, and queries only read\n");
    expect(db.hash()).toBe(before);
  });

  it("exits 1 when the statement runs out of time", async () => {
    const started = Date.now();
    const { code, stderr } = await sql([
      "--timeout-ms",
      "500",
      "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r",
    ]);
    expect(code).toBe(1);
    expect(stderr).toBe("the statement ran past its time cap of 500 ms and was stopped\n");
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("exits 1 when there is no read-model file", async () => {
    const { code, stderr } = await sql(["SELECT 1"], `${db.dir}/missing.sqlite`);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^the read models \(.*missing\.sqlite\) cannot be opened: .*\(SQLITE_CANTOPEN\); has a projector run yet\?\n$/);
  });

  it("exits 2 on a usage error", async () => {
    const { code, stderr } = await sql(["--format", "xml", "SELECT 1"]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/^--format must be table, csv or json, got "xml"\n\nusage: npm run sql/);
  });
});
