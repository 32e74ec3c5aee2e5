// The SQL worker process, forked by sql-runner.ts: it answers one QueryRequest at a time over IPC with
// runQuery's reply. It is a process and not a worker thread because a statement runs inside one native SQLite
// call that nothing in V8 can interrupt (worker.terminate() waits for it for ever, and so does process.exit()):
// only a signal stops it.
import { Worker } from "node:worker_threads";
import { runQuery } from "./run-query.js";
import { workerReady, type WorkerMessage, type WorkerRequest } from "./worker-protocol.js";

if (process.send === undefined) throw new Error("sql-worker runs as a child process with an IPC channel: see sql-runner.ts");
const send = (message: WorkerMessage): void => {
  process.send?.(message);
};

// While a statement runs this thread is blocked, so the parent's going away goes unnoticed and an endless
// statement would run on as an orphan, holding a read transaction that keeps SQLite's WAL from being recycled.
// This watchdog thread is free to act: at each request's killAt it kills the process unless the reply is out.
const watchdog = new Worker(
  `const { parentPort } = require("node:worker_threads");
  let timer;
  parentPort.on("message", (killAt) => {
    clearTimeout(timer);
    if (killAt !== null) timer = setTimeout(() => process.kill(process.pid, "SIGKILL"), Math.max(0, killAt - Date.now()));
  });`,
  { eval: true },
);
watchdog.unref();

process.on("message", (request: WorkerRequest) => {
  watchdog.postMessage(request.killAt);
  const reply = runQuery(request);
  watchdog.postMessage(null);
  send(reply);
});
// The runner closed the channel, or its process ended.
process.on("disconnect", () => {
  process.exit(0);
});
send(workerReady);
