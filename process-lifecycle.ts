// How foldline's processes end: the signals that ask them to stop, what a repeated one does, and the exit.
import type { Logger } from "pino";

/** The signals that stop a foldline process gracefully: Ctrl-C, `kill`, and the terminal closing. */
export const stopSignals: readonly NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/**
 * Listens for the stop signals from now on (call it first thing, so that a signal during start-up is no hard kill
 * either) and resolves with the first one, once it has logged `message`. Every later one is logged as "already
 * stopping" and changes nothing: a signal repeated during shutdown (Ctrl-C pressed again, or the terminal's SIGINT
 * arriving beside the one npm forwards) never cuts the graceful stop short.
 */
export function firstStopSignal(log: Logger, message: string): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received: NodeJS.Signals | undefined;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (received !== undefined) {
        log.info({ signal, first: received }, "already stopping");
        return;
      }
      received = signal;
      log.info({ signal }, message);
      resolve(signal);
    };
    for (const signal of stopSignals) process.on(signal, onSignal);
  });
}

/**
 * Exits with `code` once every line logged so far is written out. The log is written asynchronously: exiting at
 * once could drop the last lines, or write one cut short by a signal after those that followed it.
 */
function exitOnceLogged(log: Logger, code: number): void {
  log.flush(() => process.exit(code));
}

/**
 * Runs an entry point's `main` and exits with the code it answers, once logged; when it throws (it could not
 * start), logs `failure` as fatal with the error and exits with 1.
 */
export function runMain(log: Logger, main: () => Promise<number>, failure: string): void {
  main().then(
    (code) => {
      exitOnceLogged(log, code);
    },
    (err: unknown) => {
      log.fatal({ err }, failure);
      exitOnceLogged(log, 1);
    },
  );
}
