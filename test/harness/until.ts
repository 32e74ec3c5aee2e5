import { setTimeout as sleep } from "node:timers/promises";

/** Polls `condition` every 20 ms until it holds; throws naming `what` after `timeoutMs` (default 20 s). */
export async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not reached in ${timeoutMs} ms: ${what}`);
    await sleep(20);
  }
}
