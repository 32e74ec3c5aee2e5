/** Errors of the read side. Each has a readonly `kind`; `commands/error-codes.ts` maps them to codes. */

/** The read model did not reach the position a query asked for within the query's time. */
export class ReadModelBehind extends Error {
  readonly kind = "read-model-behind";
  constructor(projection: string, position: number, wanted: number, waitedMs: number) {
    super(`read model ${projection} is at position ${position}, not yet at ${wanted}, after waiting ${waitedMs} ms`);
    this.name = "ReadModelBehind";
  }
}

/** The read model holds no such entity (at the position it reflects). */
export class NotInReadModel extends Error {
  readonly kind = "not-in-read-model";
  constructor(what: string, position: number) {
    super(`${what} does not exist at position ${position}`);
    this.name = "NotInReadModel";
  }
}

/** The read models cannot be read at all (no file yet: no projector has run). */
export class ReadModelUnavailable extends Error {
  readonly kind = "read-model-unavailable";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ReadModelUnavailable";
  }
}

/** An admin request named a projection that the projector host does not run. */
export class UnknownProjection extends Error {
  readonly kind = "unknown-projection";
  constructor(message: string) {
    super(message);
    this.name = "UnknownProjection";
  }
}

/** A rebuild or a diff of the projection is already under way: one at a time per projection. */
export class ProjectionBusy extends Error {
  readonly kind = "projection-busy";
  constructor(message: string) {
    super(message);
    this.name = "ProjectionBusy";
  }
}

/** No process running the projectors answered an admin request (none holds the lease, or NATS is away). */
export class NoProjectorHost extends Error {
  readonly kind = "no-projector-host";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NoProjectorHost";
  }
}

/** A rebuild or a diff that failed or was cancelled; the live read model is as it was. */
export class RebuildFailed extends Error {
  readonly kind = "rebuild-failed";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RebuildFailed";
  }
}
