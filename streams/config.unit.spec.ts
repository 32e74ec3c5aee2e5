import { describe, expect, it } from "vitest";
import { ConfigError, loadStreamsConfig } from "./config.js";

describe("configuration", () => {
  it("defaults to the embedded server and a ./var data directory", () => {
    const config = loadStreamsConfig({});
    expect(config.natsUrl).toBeUndefined();
    expect(config.dataDir.endsWith("var")).toBe(true);
    expect(config.stream).toEqual({ name: "EVENTS", replicas: 1, duplicateWindowMs: 120_000 });
    expect(config.timeoutMs).toBe(5_000);
    expect(config.tls).toBeUndefined();
  });

  it("reads connection options", () => {
    const config = loadStreamsConfig({
      NATS_URL: "nats://127.0.0.1:4222",
      NATS_USER: "u",
      NATS_PASSWORD: "p",
      NATS_TLS_CA: "ca.pem",
    });
    expect(config.auth).toEqual({ user: "u", password: "p" });
    expect(config.tls).toEqual({ caFile: "ca.pem" });
  });

  it.each([
    [{ EVENT_STREAM_REPLICAS: "0" }, /EVENT_STREAM_REPLICAS/],
    [{ EVENT_STREAM_REPLICAS: "two" }, /EVENT_STREAM_REPLICAS/],
    [{ NATS_TIMEOUT_MS: "1.5" }, /NATS_TIMEOUT_MS/],
    [{ EVENT_STREAM: "has space" }, /EVENT_STREAM/],
    [{ NATS_TLS_CERT: "c.pem" }, /NATS_TLS_KEY/],
  ])("refuses %o", (env, message) => {
    expect(() => loadStreamsConfig(env)).toThrow(ConfigError);
    expect(() => loadStreamsConfig(env)).toThrow(message);
  });
});
