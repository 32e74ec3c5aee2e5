import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  AdminService,
  ProjectionStatusSchema,
  RowDifferenceSchema,
  TableDiffSchema,
  TableRowsSchema,
} from "../gen/foldline/admin/v1/admin_service_pb.js";
import { quoteInput } from "../commands/bounded-text.js";
import { InvalidRequest } from "../commands/errors.js";
import type { ProjectionAdmin } from "./projection-host.js";

/** DiffProjection's rows per table when the request says 0, and the most it accepts. */
const defaultMaxRowsPerTable = 20;
const maxRowsPerTableLimit = 1000;

/**
 * Registers `foldline.admin.v1.AdminService`, answered by `admin`: the projection host itself when the
 * projectors run in this process, or one reached over NATS. Errors go to the API's error interceptor
 * (UnknownProjection NOT_FOUND, ProjectionBusy FAILED_PRECONDITION, RebuildFailed ABORTED, NoProjectorHost
 * UNAVAILABLE).
 */
export function registerAdmin(router: ConnectRouter, admin: ProjectionAdmin): void {
  router.service(AdminService, {
    async getProjectionStatus() {
      const views = await admin.status();
      return {
        projections: views.map((v) =>
          create(ProjectionStatusSchema, {
            projection: v.projection,
            kind: v.kind,
            state: v.state,
            position: BigInt(v.position),
            head: BigInt(v.head),
            lag: BigInt(v.lag),
            eventsPerSecond: v.eventsPerSecond,
            parked: BigInt(v.parked),
            error: v.error ?? "",
            ...(v.task === undefined
              ? {}
              : {
                  task: {
                    kind: v.task.kind,
                    phase: v.task.phase,
                    position: BigInt(v.task.position),
                    startedAtMs: BigInt(v.task.startedAt.getTime()),
                  },
                }),
          }),
        ),
      };
    },

    async rebuildProjection(req) {
      const report = await admin.rebuild(requireProjection(req.projection));
      return {
        projection: report.projection,
        position: BigInt(report.position),
        tables: report.tables.map((t) => create(TableRowsSchema, { table: t.table, rows: BigInt(t.rows) })),
        durationMs: BigInt(report.durationMs),
      };
    },

    async diffProjection(req) {
      if (req.maxRowsPerTable > maxRowsPerTableLimit) {
        throw new InvalidRequest(
          `max_rows_per_table must be at most ${maxRowsPerTableLimit} (0 for ${defaultMaxRowsPerTable}), got ${req.maxRowsPerTable}`,
        );
      }
      const report = await admin.diff(requireProjection(req.projection), {
        maxRowsPerTable: req.maxRowsPerTable === 0 ? defaultMaxRowsPerTable : req.maxRowsPerTable,
      });
      return {
        projection: report.projection,
        position: BigInt(report.position),
        identical: report.identical,
        rowsCompared: BigInt(report.rowsCompared),
        differences: BigInt(report.differences),
        durationMs: BigInt(report.durationMs),
        tables: report.tables.map((t) =>
          create(TableDiffSchema, {
            table: t.table,
            liveRows: BigInt(t.liveRows),
            rebuiltRows: BigInt(t.rebuiltRows),
            onlyInLive: BigInt(t.onlyInLive),
            onlyInRebuilt: BigInt(t.onlyInRebuilt),
            schemaDiffers: t.schemaDiffers,
            rows: t.rows.map((r) =>
              create(RowDifferenceSchema, {
                key: JSON.stringify(r.key),
                live: r.live === undefined ? "" : JSON.stringify(r.live),
                rebuilt: r.rebuilt === undefined ? "" : JSON.stringify(r.rebuilt),
              }),
            ),
          }),
        ),
      };
    },
  });
}

function requireProjection(name: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) {
    throw new InvalidRequest(`projection must be a projection's name (letters, digits, '_' and '-'), got ${quoteInput(name)}`);
  }
  return name;
}
