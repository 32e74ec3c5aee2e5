import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckRequest,
  type HealthCheckResponseSchema,
} from "../gen/grpc/health/v1/health_pb.js";
import { capMessage } from "./bounded-text.js";

type HealthCheckResponseInit = MessageInitShape<typeof HealthCheckResponseSchema>;

/** The statuses a service can be given; SERVICE_UNKNOWN and UNKNOWN are for the protocol, never set by hand. */
export type HealthStatus = "serving" | "not_serving";

/** The standard gRPC health service (grpc.health.v1.Health), answered from statuses the process sets. */
export interface HealthService {
  /** Registers grpc.health.v1.Health (Check and Watch) on `router`. */
  register(router: ConnectRouter): void;
  /**
   * Sets the status of `service`; `""` is the server as a whole. A service becomes known the first time it is
   * set, and stays known. Watchers hear of a change at once, of a repeated status not at all; a watcher that
   * reads slowly may miss a status that was replaced before it could be sent, never the latest one. Ignored
   * after {@link HealthService.shutdown}.
   */
  setStatus(service: string, status: HealthStatus): void;
  /**
   * Sets every known service to NOT_SERVING for good, sends that to every watcher and then ends every Watch
   * stream successfully. Later Watch calls get the status and end at once. Call it when the server begins to
   * drain (for example when the API server's `shutdownSignal` aborts), so that load balancers stop sending
   * traffic and Watch streams do not hold the drain up. Safe to call twice.
   */
  shutdown(): void;
}

/** One open Watch stream. Only the newest unsent status is kept: health is a state, not a log of changes. */
interface Watcher {
  readonly service: string;
  notify(status: ServingStatus): void;
  end(): void;
}

/**
 * Creates the health service. The server as a whole (`""`) starts SERVING, as in grpc-go and grpc-java: a
 * process that answers at all is up; mark it NOT_SERVING while it cannot take work. Every other service is
 * unknown until {@link HealthService.setStatus} names it.
 *
 * Check answers the status of a known service and NotFound ("unknown service X") otherwise. Watch sends the
 * current status (SERVICE_UNKNOWN for an unknown service), then every change, until the client goes away, the
 * call's deadline passes or {@link HealthService.shutdown} is called; it leaves no listener behind.
 */
export function createHealthService(): HealthService {
  const statuses = new Map<string, ServingStatus>([["", ServingStatus.SERVING]]);
  const watchers = new Set<Watcher>();
  let shutDown = false;

  const current = (service: string): ServingStatus => statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;

  const update = (service: string, status: ServingStatus): void => {
    if (statuses.get(service) === status) return;
    statuses.set(service, status);
    for (const watcher of watchers) if (watcher.service === service) watcher.notify(status);
  };

  const check = (request: HealthCheckRequest): HealthCheckResponseInit => {
    const status = statuses.get(request.service);
    if (status === undefined) throw new ConnectError(`unknown service ${capMessage(request.service, 128)}`, Code.NotFound);
    return { status };
  };

  async function* watch(
    request: HealthCheckRequest,
    context: HandlerContext,
  ): AsyncGenerator<HealthCheckResponseInit> {
    const { signal } = context;
    if (signal.aborted) return;
    let pending: ServingStatus | undefined = current(request.service);
    let ended = shutDown;
    let wake: (() => void) | undefined;
    const watcher: Watcher = {
      service: request.service,
      notify(status) {
        pending = status;
        wake?.();
      },
      end() {
        ended = true;
        wake?.();
      },
    };
    // The client is gone (or the deadline passed): nobody would read another message, so stop at once.
    const onAbort = (): void => {
      pending = undefined;
      ended = true;
      wake?.();
    };
    watchers.add(watcher);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      let sent: ServingStatus | undefined;
      for (;;) {
        if (pending !== undefined) {
          const status: ServingStatus = pending;
          pending = undefined;
          if (status !== sent) {
            sent = status;
            yield { status };
          }
          continue;
        }
        if (ended) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      watchers.delete(watcher);
      signal.removeEventListener("abort", onAbort);
    }
  }

  return {
    register(router) {
      router.service(Health, { check, watch });
    },
    setStatus(service, status) {
      if (shutDown) return;
      update(service, status === "serving" ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
    },
    shutdown() {
      if (shutDown) return;
      for (const service of statuses.keys()) update(service, ServingStatus.NOT_SERVING);
      shutDown = true;
      for (const watcher of watchers) watcher.end();
    },
  };
}
