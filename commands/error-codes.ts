import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { DomainError } from "../domain/errors.js";
import {
  NoProjectorHost,
  NotInReadModel,
  ProjectionBusy,
  ReadModelBehind,
  ReadModelUnavailable,
  RebuildFailed,
  UnknownProjection,
} from "../projections/errors.js";
import { UnavailableError } from "../streams/errors.js";
import { capMessage, maxMessageChars } from "./bounded-text.js";
import {
  CommandConflict,
  CommandIdReused,
  ExpectedVersionMismatch,
  InvalidRequest,
  ShuttingDown,
  UndecodableRequest,
  UnknownMethod,
} from "./errors.js";

const domainCodes = {
  InvalidCommand: Code.InvalidArgument,
  NotFound: Code.NotFound,
  AlreadyExists: Code.AlreadyExists,
  RuleViolation: Code.FailedPrecondition,
} as const;

/**
 * The one place where errors become transport codes. Known errors keep their message, which says what was
 * wrong, cut to {@link capMessage}'s bound (a ConnectError raised elsewhere keeps its code and is cut too); anything
 * else is logged with its cause and answered as `Internal` with no detail from inside.
 *
 * `signal` is the call's: once it is aborted the caller has gone (cancelled, reset the stream, or ran out of
 * time), and an unknown error is most likely the failure to answer it, such as writing to a stream the client
 * reset. That is the client's doing: logged at debug, and answered (to nobody) `Canceled`, or `DeadlineExceeded`
 * when the deadline was the reason.
 */
export function toConnectError(err: unknown, log: Logger, signal?: AbortSignal): ConnectError {
  const known = knownConnectError(err);
  if (known !== undefined) return known.rawMessage.length > maxMessageChars ? capped(known) : known;
  if (signal?.aborted === true) return callEnded(err, signal.reason, log);
  log.error({ err }, "command failed unexpectedly");
  return new ConnectError("internal error", Code.Internal);
}

/** The ConnectError for an error whose meaning is known, or undefined. */
function knownConnectError(err: unknown): ConnectError | undefined {
  if (err instanceof ConnectError) return err;
  if (err instanceof DomainError) return new ConnectError(err.message, domainCodes[err.kind]);
  if (err instanceof InvalidRequest || err instanceof UndecodableRequest) return new ConnectError(err.message, Code.InvalidArgument);
  if (err instanceof UnknownMethod) return new ConnectError(err.message, Code.Unimplemented);
  if (err instanceof CommandIdReused) return new ConnectError(err.message, Code.AlreadyExists);
  if (err instanceof ExpectedVersionMismatch) return new ConnectError(err.message, Code.FailedPrecondition);
  if (err instanceof CommandConflict) return new ConnectError(err.message, Code.Aborted);
  if (err instanceof UnavailableError || err instanceof ShuttingDown) return new ConnectError(err.message, Code.Unavailable);
  if (err instanceof NotInReadModel) return new ConnectError(err.message, Code.NotFound);
  if (err instanceof ReadModelBehind) return new ConnectError(err.message, Code.DeadlineExceeded);
  if (err instanceof ReadModelUnavailable) return new ConnectError(err.message, Code.Unavailable);
  if (err instanceof UnknownProjection) return new ConnectError(err.message, Code.NotFound);
  if (err instanceof ProjectionBusy) return new ConnectError(err.message, Code.FailedPrecondition);
  if (err instanceof RebuildFailed) return new ConnectError(err.message, Code.Aborted);
  if (err instanceof NoProjectorHost) return new ConnectError(err.message, Code.Unavailable);
  return undefined;
}

/** `err` with its message cut to the bound, code, metadata and details kept. */
function capped(err: ConnectError): ConnectError {
  const out = new ConnectError(capMessage(err.rawMessage), err.code, err.metadata, undefined, err.cause);
  out.details = err.details;
  return out;
}

/** The answer for a call whose caller has gone; `reason` is why its signal was aborted. */
function callEnded(err: unknown, reason: unknown, log: Logger): ConnectError {
  log.debug({ err }, "call ended early: the client went away or its deadline passed");
  if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) {
    return new ConnectError("the call's deadline passed", Code.DeadlineExceeded);
  }
  return new ConnectError("the call was cancelled", Code.Canceled);
}

/**
 * An interceptor that maps every error a handler throws, on unary calls and inside streamed responses, through
 * {@link toConnectError}, with the call's signal (so that a client that went away is no error in the log).
 */
export function errorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    let res;
    try {
      res = await next(req);
    } catch (err) {
      throw toConnectError(err, log, req.signal);
    }
    if (!res.stream) return res;
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* messages;
        } catch (err) {
          throw toConnectError(err, log, req.signal);
        }
      })(),
    };
  };
}
