import { parseArgs, type ParseArgsConfig } from "node:util";

/** A command line that does not say what it means: the CLI prints the message and its usage, and exits with 2. */
export class UsageError extends Error {}

/** `parseArgs` with positionals allowed, its complaints turned into UsageError. */
export function parseCommandLine<T extends Omit<ParseArgsConfig, "allowPositionals">>(config: T) {
  try {
    return parseArgs({ ...config, allowPositionals: true as const });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

/** The value of `flag`: a whole number from 1 to `max`, or a UsageError. */
export function wholeNumber(flag: string, text: string, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new UsageError(`${flag} must be a whole number from 1 to ${max}, got "${text}"`);
  return n;
}

/**
 * Runs a CLI on this process's arguments: `parse` reads them (or asks for help), `run` does the work and answers the
 * exit code. A UsageError exits 2 with the usage, help prints it and exits 0, anything thrown exits 1 with its stack.
 */
export function runCli<I>(cli: {
  readonly name: string;
  readonly usage: string;
  parse(argv: string[]): I | "help";
  run(invocation: I): Promise<number>;
}): void {
  const main = async (): Promise<number> => {
    let invocation;
    try {
      invocation = cli.parse(process.argv.slice(2));
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      process.stderr.write(`${err.message}\n\n${cli.usage}`);
      return 2;
    }
    if (invocation === "help") {
      process.stdout.write(cli.usage);
      return 0;
    }
    return cli.run(invocation);
  };
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${cli.name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
