import { NoRespondersError, RequestError, TimeoutError, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { NoProjectorHost, ProjectionBusy, RebuildFailed, UnknownProjection } from "./errors.js";
import type { ProjectionAdmin, ProjectionStatusView, ProjectionTask } from "./projection-host.js";

/**
 * The subjects a projector host answers on, with JSON request/reply: `<prefix>.status` (`{}`),
 * `<prefix>.rebuild` (`{"projection"}`) and `<prefix>.diff` (`{"projection","maxRowsPerTable"?}`). A reply is
 * `{"result": …}` or `{"error": {"kind", "message"}}`, the kind being that of the projections' errors.
 */
const adminSubjectPrefix = "foldline.admin.projections";

/** Hosts answer in one queue group: a request reaches one of them. */
const queue = "foldline-projector-hosts";

interface AdminRequest {
  readonly projection?: string;
  readonly maxRowsPerTable?: number;
}

type AdminReply = { readonly result: unknown } | { readonly error: { readonly kind: string; readonly message: string } };

/** Answers the admin subjects with `admin` until closed. */
export interface AdminResponder {
  /** Stops answering; requests under way are still answered. */
  close(): Promise<void>;
}

/**
 * Answers admin requests on NATS with `admin`: run it in the process that runs the projectors, while it does
 * (a worker subscribes while it holds the lease). Errors with a `kind` are answered with it; anything else is
 * logged and answered as `internal`.
 */
export function serveProjectionAdmin(nc: NatsConnection, admin: ProjectionAdmin, log: Logger): AdminResponder {
  const answer = async (operation: string, request: AdminRequest): Promise<unknown> => {
    switch (operation) {
      case "status":
        return (await admin.status()).map((view) => ({
          ...view,
          ...(view.task === undefined ? {} : { task: { ...view.task, startedAt: view.task.startedAt.toISOString() } }),
        }));
      case "rebuild":
        return admin.rebuild(request.projection ?? "");
      case "diff":
        return admin.diff(request.projection ?? "", request.maxRowsPerTable === undefined ? {} : { maxRowsPerTable: request.maxRowsPerTable });
      default:
        throw new UnknownOperation(`no admin operation "${operation}" (status, rebuild, diff)`);
    }
  };
  const sub: Subscription = nc.subscribe(`${adminSubjectPrefix}.*`, {
    queue,
    callback: (err, msg) => {
      if (err !== null) {
        log.warn({ err }, "the admin subscription failed");
        return;
      }
      const operation = msg.subject.slice(adminSubjectPrefix.length + 1);
      void (async () => {
        let reply: AdminReply;
        try {
          const request = msg.data.length === 0 ? {} : (msg.json<AdminRequest>());
          reply = { result: await answer(operation, request) };
        } catch (e) {
          const kind = (e as { kind?: unknown }).kind;
          if (typeof kind === "string" && e instanceof Error) {
            reply = { error: { kind, message: e.message } };
          } else {
            log.error({ err: e, operation }, "admin request failed unexpectedly");
            reply = { error: { kind: "internal", message: "internal error" } };
          }
        }
        msg.respond(JSON.stringify(reply));
      })();
    },
  });
  let closing: Promise<void> | undefined;
  return {
    close: () =>
      (closing ??= sub.drain().catch((err: unknown) => {
        log.warn({ err }, "the admin subscription could not be drained");
      })),
  };
}

/** Options of {@link createNatsProjectionAdmin}. */
export interface NatsProjectionAdminOptions {
  /** How long a status request waits for its answer. */
  readonly statusTimeoutMs: number;
  /** How long a rebuild or diff waits for its answer, unless its call gives less (default 1 hour). */
  readonly taskTimeoutMs?: number;
}

/**
 * The admin operations of a projector host elsewhere, over NATS. Rejects with NoProjectorHost when no host
 * answers (none subscribed, or no answer in time: a rebuild goes on regardless), and with the host's own errors
 * (UnknownProjection, ProjectionBusy, RebuildFailed) as it answered them.
 */
export function createNatsProjectionAdmin(nc: NatsConnection, options: NatsProjectionAdminOptions): ProjectionAdmin {
  const taskTimeoutMs = options.taskTimeoutMs ?? 3_600_000;
  const request = async <T>(operation: string, body: AdminRequest, timeout: number): Promise<T> => {
    let reply: AdminReply;
    try {
      const msg = await nc.request(`${adminSubjectPrefix}.${operation}`, JSON.stringify(body), { timeout });
      reply = msg.json<AdminReply>();
    } catch (err) {
      if (err instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders())) {
        throw new NoProjectorHost("no projector host answers: is a projector worker running and holding its lease?", { cause: err });
      }
      if (err instanceof TimeoutError || err instanceof RequestError) {
        throw new NoProjectorHost(`the projector host did not answer the ${operation} request within ${timeout} ms`, { cause: err });
      }
      throw new NoProjectorHost(`the projector host cannot be reached: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if ("error" in reply) throw remoteError(reply.error.kind, reply.error.message);
    return reply.result as T;
  };
  return {
    async status() {
      type Wire = Omit<ProjectionStatusView, "task"> & { task?: Omit<ProjectionTask, "startedAt"> & { startedAt: string } };
      const views = await request<Wire[]>("status", {}, options.statusTimeoutMs);
      return views.map(({ task, ...view }) =>
        task === undefined ? view : { ...view, task: { ...task, startedAt: new Date(task.startedAt) } },
      );
    },
    rebuild: (projection) => request("rebuild", { projection }, taskTimeoutMs),
    diff: (projection, diff = {}) => request("diff", { projection, ...diff }, taskTimeoutMs),
  };
}

/** An operation the admin subjects do not have. */
class UnknownOperation extends Error {
  readonly kind = "unknown-operation";
}

function remoteError(kind: string, message: string): Error {
  switch (kind) {
    case "unknown-projection":
      return new UnknownProjection(message);
    case "projection-busy":
      return new ProjectionBusy(message);
    case "rebuild-failed":
      return new RebuildFailed(message);
    default:
      return new Error(`the projector host answered ${kind}: ${message}`);
  }
}
