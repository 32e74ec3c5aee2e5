import { resolve } from "node:path";

/** Everything foldline's stream layer reads from the environment. See the README's configuration table. */
export interface StreamsConfig {
  /** Comma-separated NATS server URLs; undefined runs an embedded nats-server. */
  readonly natsUrl: string | undefined;
  readonly auth: NatsAuth;
  readonly tls: NatsTls | undefined;
  /** Bound on every NATS request; an outage surfaces as an UnavailableError after this long. */
  readonly timeoutMs: number;
  /** Root folder for local state; the embedded nats-server keeps its store in `<dataDir>/nats`. */
  readonly dataDir: string;
  readonly stream: EventStreamSettings;
}

/** Credentials for an external NATS server; at most one of the ways is normally set. */
export interface NatsAuth {
  readonly credsFile?: string;
  readonly user?: string;
  readonly password?: string;
  readonly token?: string;
}

/** TLS files for an external NATS server. */
export interface NatsTls {
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
}

/** The settings of the event stream that the environment may change. */
export interface EventStreamSettings {
  readonly name: string;
  readonly replicas: number;
  readonly duplicateWindowMs: number;
}

/** A configuration value that cannot be used; the message names the variable and what it accepts. */
export class ConfigError extends Error {
  readonly kind = "config";
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** An environment to read configuration from (normally `process.env`). */
export type Env = Readonly<Record<string, string | undefined>>;

/** Typed readers of environment variables; each refuses a malformed value with a ConfigError naming it. */
export interface EnvReader {
  /** The trimmed value, undefined when unset or empty. */
  readonly text: (name: string) => string | undefined;
  /** A whole number in [min, max], `fallback` when unset. */
  readonly integer: (name: string, fallback: number, min: number, max: number) => number;
  /** true/false/yes/no/1/0, false when unset. */
  readonly flag: (name: string) => boolean;
}

/** Creates the readers over `env`. */
export function envReader(env: Env): EnvReader {
  const text = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  return {
    text,
    integer: (name, fallback, min, max) => {
      const v = text(name);
      if (v === undefined) return fallback;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got "${v}"`);
      }
      return n;
    },
    flag: (name) => {
      const v = text(name)?.toLowerCase();
      if (v === undefined || v === "0" || v === "false" || v === "no") return false;
      if (v === "1" || v === "true" || v === "yes") return true;
      throw new ConfigError(`${name} must be true or false, got "${v}"`);
    },
  };
}

/** Reads the configuration from `env` (normally `process.env`), refusing malformed values with a ConfigError. */
export function loadStreamsConfig(env: Env = process.env): StreamsConfig {
  const { text, integer } = envReader(env);
  const defined = <T extends object>(o: T): T =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

  const name = text("EVENT_STREAM") ?? "EVENTS";
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) {
    throw new ConfigError(`EVENT_STREAM must be 1 to 64 letters, digits, '-' or '_', got "${name}"`);
  }
  const tls = defined<NatsTls>({
    caFile: text("NATS_TLS_CA"),
    certFile: text("NATS_TLS_CERT"),
    keyFile: text("NATS_TLS_KEY"),
  } as NatsTls);
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new ConfigError("NATS_TLS_CERT and NATS_TLS_KEY must be set together");
  }
  return {
    natsUrl: text("NATS_URL"),
    auth: defined<NatsAuth>({
      credsFile: text("NATS_CREDS"),
      user: text("NATS_USER"),
      password: text("NATS_PASSWORD"),
      token: text("NATS_TOKEN"),
    } as NatsAuth),
    tls: Object.keys(tls).length === 0 ? undefined : tls,
    timeoutMs: integer("NATS_TIMEOUT_MS", 5_000, 100, 600_000),
    dataDir: resolve(text("DATA_DIR") ?? "var"),
    stream: {
      name,
      replicas: integer("EVENT_STREAM_REPLICAS", 1, 1, 5),
      duplicateWindowMs: integer("EVENT_STREAM_DUPLICATE_WINDOW_MS", 120_000, 100, 7 * 24 * 3_600_000),
    },
  };
}
