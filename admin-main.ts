// `npm run admin -- [--url URL] [--json] status | rebuild <projection> | diff <projection>`: the operators' CLI of
// AdminService, on the API server (which answers itself or forwards to the projector worker).
import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  AdminService,
  DiffProjectionResponseSchema,
  GetProjectionStatusResponseSchema,
  RebuildProjectionResponseSchema,
  type DiffProjectionResponse,
  type GetProjectionStatusResponse,
  type RebuildProjectionResponse,
} from "./gen/foldline/admin/v1/admin_service_pb.js";
import { parseCommandLine, runCli, UsageError, wholeNumber } from "./commands/cli.js";
import { formatAligned } from "./projections/sql/sql-format.js";

const usage = `usage: npm run -s admin -- [--url URL] [--json] <command>

Commands:
  status                  every projector: state, position, stream head, lag, events/s, parked commits
  rebuild <projection>    rebuilds a SQLite read model beside the live one and switches to it once caught up;
                          queries keep answering throughout
  diff <projection>       rebuilds a SQLite read model into a scratch copy at the live one's position and
                          compares them row by row (--max-rows N: differing rows shown per table, default 20)

  --url       the API server (default $ADMIN_URL, else http://127.0.0.1:$API_PORT, API_PORT defaulting to 8080)
  --json      prints the answer as JSON (the proto3 JSON form of the RPC's response)

Exit status: 0 done (diff: no difference); 3 diff found differences; 1 the call failed (the reason on stderr:
NOT_FOUND an unknown projection, FAILED_PRECONDITION a rebuild or diff already under way, UNAVAILABLE no
projector host answering, ABORTED the rebuild failed and the live read model is unchanged); 2 a usage error.
`;


type Command =
  | { readonly name: "status" }
  | { readonly name: "rebuild"; readonly projection: string }
  | { readonly name: "diff"; readonly projection: string; readonly maxRows: number };

interface Invocation {
  readonly url: string;
  readonly json: boolean;
  readonly command: Command;
}

function parse(argv: string[], env: NodeJS.ProcessEnv): Invocation | "help" {
  const { values, positionals } = parseCommandLine({
    args: argv,
    options: {
      url: { type: "string" },
      json: { type: "boolean", default: false },
      "max-rows": { type: "string", default: "20" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  const [name, projection, ...rest] = positionals;
  if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(" ")}`);
  let command: Command;
  if (name === "status" && projection === undefined) {
    command = { name };
  } else if ((name === "rebuild" || name === "diff") && projection !== undefined) {
    const maxRows = wholeNumber("--max-rows", values["max-rows"], 1000);
    command = name === "rebuild" ? { name, projection } : { name, projection, maxRows };
  } else {
    throw new UsageError(name === undefined ? "a command is required" : `"${positionals.join(" ")}" is not a command`);
  }
  return { url: values.url ?? env.ADMIN_URL ?? `http://127.0.0.1:${env.API_PORT ?? "8080"}`, json: values.json, command };
}

function formatStatus(res: GetProjectionStatusResponse): string {
  return formatAligned({
    columns: ["projection", "kind", "state", "position", "head", "lag", "events/s", "parked", "task", "error"],
    rows: res.projections.map((p) => [
      p.projection,
      p.kind,
      p.state,
      p.position,
      p.head,
      p.lag,
      p.eventsPerSecond,
      p.parked,
      p.task === undefined ? "" : `${p.task.kind} ${p.task.phase} at ${p.task.position}`,
      p.error,
    ]),
  });
}

function formatRebuild(res: RebuildProjectionResponse): string {
  const table = formatAligned({ columns: ["table", "rows"], rows: res.tables.map((t) => [t.table, t.rows]) });
  return `rebuilt ${res.projection} and switched it in at position ${res.position} in ${res.durationMs} ms\n${table}`;
}

function formatDiff(res: DiffProjectionResponse): string {
  const verdict = res.identical
    ? `${res.projection} equals a fresh rebuild at position ${res.position} (${res.rowsCompared} rows compared)`
    : `${res.projection} differs from a fresh rebuild at position ${res.position}: ${res.differences} rows differ`;
  const tables = formatAligned({
    columns: ["table", "live rows", "rebuilt rows", "only in live", "only in rebuilt", "schema differs"],
    rows: res.tables.map((t) => [t.table, t.liveRows, t.rebuiltRows, t.onlyInLive, t.onlyInRebuilt, t.schemaDiffers ? "yes" : ""]),
  });
  const rows = res.tables.flatMap((t) =>
    t.rows.map((r) => [t.table, r.key, r.live === "" ? "(missing)" : r.live, r.rebuilt === "" ? "(missing)" : r.rebuilt]),
  );
  const differing = rows.length === 0 ? "" : `\n${formatAligned({ columns: ["table", "key", "live", "rebuilt"], rows })}`;
  return `${verdict}\n${tables}${differing}`;
}

async function run(invocation: Invocation): Promise<number> {
  const admin = createClient(AdminService, createGrpcTransport({ baseUrl: invocation.url }));
  const { command, json } = invocation;
  const print = (text: string): void => {
    process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
  };
  try {
    switch (command.name) {
      case "status": {
        const res = await admin.getProjectionStatus({});
        print(json ? JSON.stringify(toJson(GetProjectionStatusResponseSchema, res)) : formatStatus(res));
        return 0;
      }
      case "rebuild": {
        const res = await admin.rebuildProjection({ projection: command.projection });
        print(json ? JSON.stringify(toJson(RebuildProjectionResponseSchema, res)) : formatRebuild(res));
        return 0;
      }
      case "diff": {
        const res = await admin.diffProjection({ projection: command.projection, maxRowsPerTable: command.maxRows });
        print(json ? JSON.stringify(toJson(DiffProjectionResponseSchema, res)) : formatDiff(res));
        return res.identical ? 0 : 3;
      }
    }
  } catch (err) {
    if (!(err instanceof ConnectError)) throw err;
    process.stderr.write(`${codeName(err.code)}: ${err.rawMessage} (${invocation.url})\n`);
    return 1;
  }
}

/** A code's gRPC name: NOT_FOUND, FAILED_PRECONDITION. */
function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

runCli({ name: "admin", usage, parse: (argv) => parse(argv, process.env), run });
