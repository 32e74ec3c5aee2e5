import { join } from "node:path";
import { ConfigError, envReader, type Env } from "../streams/config.js";

/** What projector workers read from the environment. See the README's configuration table. */
export interface ProjectionsConfig {
  /** Whether `npm start` runs the projectors in its own process (`PROJECTORS=embedded`, the default) or leaves
   * them to `npm run projector` workers (`PROJECTORS=separate`). */
  readonly embedded: boolean;
  /** The SQLite file of the read models. */
  readonly databaseFile: string;
  /** Commits per transaction at most. */
  readonly batchSize: number;
  /** A projector worker that has not renewed its lease for this long is presumed dead and replaced. */
  readonly leaseTtlMs: number;
}

/** Reads the configuration from `env`; `dataDir` is the streams configuration's DATA_DIR. */
export function loadProjectionsConfig(dataDir: string, env: Env = process.env): ProjectionsConfig {
  const { text, integer } = envReader(env);
  const mode = text("PROJECTORS") ?? "embedded";
  if (mode !== "embedded" && mode !== "separate") {
    throw new ConfigError(`PROJECTORS must be "embedded" or "separate", got "${mode}"`);
  }
  return {
    embedded: mode === "embedded",
    databaseFile: text("READ_MODEL_DB") ?? join(dataDir, "read-models.sqlite"),
    batchSize: integer("PROJECTOR_BATCH_SIZE", 500, 1, 100_000),
    leaseTtlMs: integer("PROJECTOR_LEASE_TTL_MS", 10_000, 300, 600_000),
  };
}
