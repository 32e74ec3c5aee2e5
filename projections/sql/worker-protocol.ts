import type { QueryReply, QueryRequest } from "./run-query.js";

/** What the runner sends a SQL worker process: the query and when the process is to kill itself. */
export interface WorkerRequest extends QueryRequest {
  /**
   * Epoch ms after which the worker kills itself if it is still running the statement. Not the time cap, which
   * the runner enforces: this only ends statements whose runner is gone (a runner process that crashed).
   */
  readonly killAt: number;
}

/** What a SQL worker process sends: first {@link workerReady}, then one reply per request, in order. */
export type WorkerMessage = typeof workerReady | QueryReply;

/** A worker's first message: it has loaded and takes requests. */
export const workerReady = "ready";
