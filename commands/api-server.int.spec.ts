import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { setMaxListeners } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as https from "node:https";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type Client,
  type Transport,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckResponse,
} from "../gen/grpc/health/v1/health_pb.js";
import { connectError, envelope, grpcStatus, openRawSession, type RawAnswer } from "../test/harness/raw-http2.js";
import { createApiServer, shutdownSignalKey, type ApiServer, type ApiServerOptions } from "./api-server.js";
import { createHealthService, type HealthService } from "./health.js";

// The only services here are the standard health service: Check is the unary call, Watch the long-running
// stream. The test, as the composition root, wires health.shutdown() to the server's shutdownSignal.

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

interface Started {
  readonly server: ApiServer;
  readonly health: HealthService;
  readonly logs: LogLine[];
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(
  options: Partial<Omit<ApiServerOptions, "routes" | "log">> & { wireHealth?: boolean } = {},
): Promise<Started> {
  const { wireHealth = true, ...serverOptions } = options;
  const logs: LogLine[] = [];
  const log = pino({ level: "debug" }, { write: (line: string) => logs.push(JSON.parse(line) as LogLine) });
  const health = createHealthService();
  const server = await createApiServer({
    routes: (router) => {
      health.register(router);
    },
    log,
    ...serverOptions,
  });
  cleanups.push(() => server.close());
  if (wireHealth) {
    server.shutdownSignal.addEventListener("abort", () => {
      health.shutdown();
    });
  }
  return { server, health, logs };
}

/** An HTTP/2 transport on its own connection, closed after the test. */
function h2<T extends Transport>(
  make: (sessionManager: Http2SessionManager) => T,
  url: string,
  ca?: Buffer,
): T {
  const sessionManager = new Http2SessionManager(url, {}, ca === undefined ? {} : { ca });
  cleanups.push(() => {
    sessionManager.abort();
  });
  return make(sessionManager);
}

/** An HTTP/1.1 agent of its own (keep-alive), destroyed after the test. */
function h1Agent(): http.Agent {
  const agent = new http.Agent({ keepAlive: true });
  cleanups.push(() => {
    agent.destroy();
  });
  return agent;
}

const healthOver = (transport: Transport): Client<typeof Health> => createClient(Health, transport);

/** A health client speaking gRPC over its own HTTP/2 connection. */
const grpcHealth = (url: string): Client<typeof Health> =>
  healthOver(h2((sessionManager) => createGrpcTransport({ baseUrl: url, sessionManager }), url));

/** A health client speaking Connect over HTTP/1.1, through its own keep-alive agent unless given one. */
const connect11Health = (url: string, agent: http.Agent = h1Agent()): Client<typeof Health> =>
  healthOver(createConnectTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: { agent } }));

/** Writes `request` to a raw TCP connection and collects everything until the server closes it. */
async function rawExchange(port: number, request: string): Promise<Buffer> {
  const socket = net.connect(port, "127.0.0.1");
  cleanups.push(() => socket.destroy());
  socket.setNoDelay(true);
  socket.setTimeout(5_000, () => socket.destroy(new Error("no answer within 5 s")));
  const received: Buffer[] = [];
  const closed = new Promise<Buffer>((resolve, reject) => {
    socket.on("data", (chunk: Buffer) => received.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => {
      resolve(Buffer.concat(received));
    });
  });
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  socket.write(request);
  return closed;
}

function connectRaw(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve();
    });
    socket.once("error", reject);
  });
}

/** The status in a Watch stream's next message, or "done" when the stream ended without error. */
async function nextStatus(stream: AsyncIterator<HealthCheckResponse>): Promise<ServingStatus | "done"> {
  const next = await stream.next();
  return next.done === true ? "done" : next.value.status;
}

async function eventually(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(10);
  }
}

/** A self-signed certificate for 127.0.0.1 made with the openssl binary, or undefined when there is none. */
function selfSignedCertificate(): { cert: Buffer; key: Buffer } | undefined {
  const dir = mkdtempSync(join(tmpdir(), "foldline-tls-"));
  try {
    const [certFile, keyFile] = [join(dir, "cert.pem"), join(dir, "key.pem")];
    execFileSync(
      "openssl",
      [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", keyFile, "-out", certFile,
      ],
      { stdio: "pipe" },
    );
    return { cert: readFileSync(certFile), key: readFileSync(keyFile) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("protocols on one port", { timeout: 15_000 }, () => {
  it("answers Check over HTTP/2 with gRPC, Connect and gRPC-Web", async () => {
    const { server, health } = await start();
    health.setStatus("foldline.test.v1.Probe", "not_serving");
    const transports = {
      grpc: h2((sessionManager) => createGrpcTransport({ baseUrl: server.url, sessionManager }), server.url),
      connect: h2(
        (sessionManager) => createConnectTransport({ baseUrl: server.url, httpVersion: "2", sessionManager }),
        server.url,
      ),
      grpcWeb: h2(
        (sessionManager) => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2", sessionManager }),
        server.url,
      ),
    };
    for (const [name, transport] of Object.entries(transports)) {
      const client = healthOver(transport);
      expect((await client.check({ service: "" })).status, name).toBe(ServingStatus.SERVING);
      const probe = await client.check({ service: "foldline.test.v1.Probe" });
      expect(probe.status, name).toBe(ServingStatus.NOT_SERVING);
    }
  });

  it("answers Check over HTTP/1.1 with Connect and gRPC-Web on the same port", async () => {
    const { server } = await start();
    const agent = h1Agent();
    const transports = {
      connect: createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", nodeOptions: { agent } }),
      connectJson: createConnectTransport({
        baseUrl: server.url,
        httpVersion: "1.1",
        useBinaryFormat: false,
        nodeOptions: { agent },
      }),
      grpcWeb: createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1", nodeOptions: { agent } }),
    };
    for (const [name, transport] of Object.entries(transports)) {
      expect((await healthOver(transport).check({ service: "" })).status, name).toBe(ServingStatus.SERVING);
    }
  });

  it("answers a plain HTTP/1.1 POST of Connect JSON", async () => {
    const { server } = await start();
    const answer = await new Promise<{ status: number | undefined; type: string | undefined; body: string }>(
      (resolve, reject) => {
        const req = http.request(
          `${server.url}/grpc.health.v1.Health/Check`,
          { method: "POST", agent: false, headers: { "content-type": "application/json" } },
          (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (chunk: string) => (body += chunk));
            res.on("end", () => {
              resolve({ status: res.statusCode, type: res.headers["content-type"], body });
            });
            res.on("error", reject);
          },
        );
        req.on("error", reject);
        req.end("{}");
      },
    );
    expect(answer.status).toBe(200);
    expect(answer.type).toBe("application/json");
    expect(JSON.parse(answer.body)).toEqual({ status: "SERVING" });
  });

  it("serves HTTPS: gRPC over HTTP/2 and Connect over HTTP/1.1, chosen by ALPN", async (ctx) => {
    const certificate = selfSignedCertificate();
    if (certificate === undefined) {
      ctx.skip("openssl is not on PATH: cannot make a test certificate");
      return;
    }
    const { server, logs } = await start({ tls: certificate, shutdownTimeoutMs: 5_000 });
    expect(server.url).toBe(`https://127.0.0.1:${server.port}`);
    const ca = certificate.cert;
    const agent = new https.Agent({ keepAlive: true, ca });
    cleanups.push(() => {
      agent.destroy();
    });
    const grpc = h2(
      (sessionManager) => createGrpcTransport({ baseUrl: server.url, sessionManager }),
      server.url,
      ca,
    );
    const connect11 = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", nodeOptions: { agent } });
    expect((await healthOver(grpc).check({ service: "" })).status).toBe(ServingStatus.SERVING);
    expect((await healthOver(connect11).check({ service: "" })).status).toBe(ServingStatus.SERVING);
    // A client that does not speak TLS is dropped, and nothing else is disturbed.
    await rawExchange(server.port, "hello\r\n\r\n");
    expect((await healthOver(grpc).check({ service: "" })).status).toBe(ServingStatus.SERVING);

    // The HTTP/1.1 connection is now idle in the agent's pool: close() must not wait for it.
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(logs.filter((l) => l.level >= 40)).toEqual([]);
  });

  it("routes a client preface split across packets to HTTP/2", async () => {
    const { server } = await start();
    const emptySettings = Buffer.from([0, 0, 0, 0x04, 0, 0, 0, 0, 0]);
    const socket = net.connect(server.port, "127.0.0.1");
    cleanups.push(() => socket.destroy());
    socket.setNoDelay(true);
    await new Promise<void>((resolve) => socket.once("connect", resolve));
    const firstFrame = new Promise<Buffer>((resolve, reject) => {
      let received = Buffer.alloc(0);
      socket.on("data", (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length >= 9) resolve(received.subarray(0, 9));
      });
      socket.on("error", reject);
      socket.on("close", () => {
        reject(new Error(`closed after ${received.length} bytes: ${received.toString("latin1")}`));
      });
    });
    for (const piece of ["PR", "I * HTTP/2.0\r\n\r\nS", "M\r\n\r\n"]) {
      socket.write(piece);
      await sleep(20);
    }
    socket.write(emptySettings);
    // An HTTP/2 server opens with its SETTINGS frame (type 0x4).
    expect((await firstFrame)[3]).toBe(0x04);
  });

  it("carries 100 concurrent streams on one HTTP/2 connection", async () => {
    const { server } = await start();
    // One Http2SessionManager: every call goes over its one connection.
    const client = grpcHealth(server.url);
    const abort = new AbortController();
    setMaxListeners(100, abort.signal);
    const streams = Array.from({ length: 100 }, () =>
      client.watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator](),
    );
    const first = await Promise.all(streams.map(nextStatus));
    expect(first).toEqual(Array<ServingStatus>(100).fill(ServingStatus.SERVING));
    expect(server.inFlight()).toBe(100);
    abort.abort();
    await Promise.allSettled(streams.map((s) => s.next()));
    // Every Watch handler noticed its client leave and ended.
    await eventually(() => server.inFlight() === 0);
  });
});

describe("health", { timeout: 15_000 }, () => {
  it("answers NotFound for an unknown service", async () => {
    const { server } = await start();
    const client = grpcHealth(server.url);
    const err = await client.check({ service: "no.such.Service" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.NotFound);
    expect(err?.rawMessage).toBe("unknown service no.such.Service");
  });

  it("streams SERVING, then NOT_SERVING after setStatus, over HTTP/2 and HTTP/1.1", async () => {
    const { server, health } = await start();
    health.setStatus("foldline.test.v1.Probe", "serving");
    const clients = {
      grpc: grpcHealth(server.url),
      connect11: connect11Health(server.url),
    };
    const abort = new AbortController();
    for (const [name, client] of Object.entries(clients)) {
      const stream = client.watch({ service: "foldline.test.v1.Probe" }, { signal: abort.signal });
      const it = stream[Symbol.asyncIterator]();
      expect(await nextStatus(it), name).toBe(ServingStatus.SERVING);
      health.setStatus("foldline.test.v1.Probe", "serving"); // no change: not sent
      health.setStatus("foldline.test.v1.Probe", "not_serving");
      expect(await nextStatus(it), name).toBe(ServingStatus.NOT_SERVING);
      health.setStatus("foldline.test.v1.Probe", "serving");
      expect(await nextStatus(it), name).toBe(ServingStatus.SERVING);
    }
    abort.abort();
    await eventually(() => server.inFlight() === 0);
  });

  it("after shutdown, answers NOT_SERVING for good and ends Watch streams at once", async () => {
    const health = createHealthService();
    health.setStatus("foldline.test.v1.Probe", "serving");
    const client = healthOver(
      createRouterTransport((router) => {
        health.register(router);
      }),
    );
    health.shutdown();
    health.setStatus("foldline.test.v1.Probe", "serving");
    health.shutdown();
    expect((await client.check({ service: "" })).status).toBe(ServingStatus.NOT_SERVING);
    expect((await client.check({ service: "foldline.test.v1.Probe" })).status).toBe(ServingStatus.NOT_SERVING);
    const statuses: ServingStatus[] = [];
    for await (const res of client.watch({ service: "foldline.test.v1.Probe" })) statuses.push(res.status);
    for await (const res of client.watch({ service: "no.such.Service" })) statuses.push(res.status);
    expect(statuses).toEqual([ServingStatus.NOT_SERVING, ServingStatus.SERVICE_UNKNOWN]);
  });

  it("streams SERVICE_UNKNOWN for an unknown service until it becomes known", async () => {
    const { server, health } = await start();
    const client = grpcHealth(server.url);
    const abort = new AbortController();
    const stream = client.watch({ service: "foldline.test.v1.Late" }, { signal: abort.signal });
    const it = stream[Symbol.asyncIterator]();
    expect(await nextStatus(it)).toBe(ServingStatus.SERVICE_UNKNOWN);
    health.setStatus("foldline.test.v1.Late", "serving");
    expect(await nextStatus(it)).toBe(ServingStatus.SERVING);
    abort.abort();
    await eventually(() => server.inFlight() === 0);
  });
});

describe("graceful shutdown", { timeout: 15_000 }, () => {
  it("ends open Watch streams cleanly, refuses new connections and resolves", async () => {
    const { server, health, logs } = await start();
    health.setStatus("foldline.test.v1.Probe", "serving");
    const watches = {
      grpc: grpcHealth(server.url),
      connect11: connect11Health(server.url),
    };
    const received = Object.entries(watches).map(async ([name, client]) => {
      const statuses: ServingStatus[] = [];
      for await (const res of client.watch({ service: "foldline.test.v1.Probe" })) statuses.push(res.status);
      return { name, statuses };
    });
    await eventually(() => server.inFlight() === 2);

    const closing = server.close();
    expect(server.close()).toBe(closing);
    expect(server.shutdownSignal.aborted).toBe(true);
    expect(ConnectError.from(server.shutdownSignal.reason).code).toBe(Code.Unavailable);
    // Both streams hear NOT_SERVING (from health.shutdown(), hung on shutdownSignal) and end without error.
    expect(await Promise.all(received)).toEqual([
      { name: "grpc", statuses: [ServingStatus.SERVING, ServingStatus.NOT_SERVING] },
      { name: "connect11", statuses: [ServingStatus.SERVING, ServingStatus.NOT_SERVING] },
    ]);
    await closing;
    expect(server.inFlight()).toBe(0);
    await expect(connectRaw(server.port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    expect(logs.filter((l) => l.level >= 40)).toEqual([]);
  });

  it("shows handlers the shutdown signal in their context", async () => {
    const seen: AbortSignal[] = [];
    const server = await createApiServer({
      routes: (router) => {
        router.service(Health, {
          check: (_req, context) => {
            seen.push(context.values.get(shutdownSignalKey));
            return { status: ServingStatus.SERVING };
          },
        });
      },
      log: pino({ level: "silent" }),
    });
    cleanups.push(() => server.close());
    const client = grpcHealth(server.url);
    await client.check({});
    expect(seen).toEqual([server.shutdownSignal]);
  });

  it("cuts off, after shutdownTimeoutMs, a stream that does not end, and logs it", async () => {
    const { server, logs } = await start({ wireHealth: false, shutdownTimeoutMs: 300 });
    const client = grpcHealth(server.url);
    const it = client.watch({ service: "" })[Symbol.asyncIterator]();
    expect(await nextStatus(it)).toBe(ServingStatus.SERVING);
    const rest = it.next();
    const started = Date.now();
    const closing = server.close();
    // Refused while still draining, too.
    await expect(connectRaw(server.port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await closing;
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(2_000);
    await expect(rest).rejects.toBeInstanceOf(ConnectError);
    expect(logs.find((l) => l.level === 40)).toMatchObject({ inFlight: 1, shutdownTimeoutMs: 300 });
  });

  it("closes idle HTTP/1.1 connections at once, while streams still drain", async () => {
    const { server, health } = await start({ wireHealth: false, shutdownTimeoutMs: 5_000 });
    const agent = h1Agent();
    const connect11 = connect11Health(server.url, agent);
    expect((await connect11.check({})).status).toBe(ServingStatus.SERVING);
    const idle = Object.values(agent.freeSockets).flat()[0];
    if (idle === undefined) throw new Error("the agent kept no connection");
    const idleClosed = new Promise((resolve) => idle.once("close", resolve));
    const grpc = grpcHealth(server.url);
    const it = grpc.watch({ service: "" })[Symbol.asyncIterator]();
    expect(await nextStatus(it)).toBe(ServingStatus.SERVING);

    const closing = server.close();
    await idleClosed;
    expect(server.inFlight()).toBe(1);
    // Without the wiring on shutdownSignal, it is up to whoever owns the health service to end its streams.
    health.shutdown();
    expect(await nextStatus(it)).toBe(ServingStatus.NOT_SERVING);
    expect(await nextStatus(it)).toBe("done");
    await closing;
  });

  it("does not wait for an idle HTTP/1.1 keep-alive connection", async () => {
    const { server, logs } = await start({ shutdownTimeoutMs: 5_000 });
    const agent = h1Agent();
    const client = connect11Health(server.url, agent);
    expect((await client.check({})).status).toBe(ServingStatus.SERVING);
    await eventually(() => Object.values(agent.freeSockets).flat().length === 1);
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(logs.filter((l) => l.level >= 40)).toEqual([]);
  });
});

describe("bad clients", { timeout: 15_000 }, () => {
  it("answers garbage with 400 and keeps serving", async () => {
    const { server, logs } = await start();
    const reply = await rawExchange(server.port, "hello\r\n\r\n");
    expect(reply.toString("latin1")).toMatch(/^(HTTP\/1\.1 400 |$)/);
    const client = connect11Health(server.url);
    expect((await client.check({})).status).toBe(ServingStatus.SERVING);
    expect(logs.filter((l) => l.level >= 40)).toEqual([]);
  });

  it("answers 400, instead of crashing, when connect-node cannot make a URL of the request", async () => {
    const { server } = await start();
    const check = "POST /grpc.health.v1.Health/Check";
    const body = "content-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
    for (const request of [`${check} HTTP/1.0\r\n${body}`, `${check} HTTP/1.1\r\nhost: a b\r\n${body}`]) {
      const reply = await rawExchange(server.port, request);
      expect(reply.toString("latin1"), request).toMatch(/^HTTP\/1\.1 400 /);
    }
    const client = connect11Health(server.url);
    expect((await client.check({})).status).toBe(ServingStatus.SERVING);
  });

  it("survives clients that vanish mid-preface and mid-request", async () => {
    const { server } = await start();
    const partials = ["PRI * HTTP/2", "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nhost: x\r\ncontent-le"];
    for (const partial of partials) {
      const socket = net.connect(server.port, "127.0.0.1");
      await new Promise<void>((resolve) => socket.once("connect", resolve));
      socket.write(partial);
      await sleep(20);
      socket.resetAndDestroy();
    }
    await sleep(50);
    const client = grpcHealth(server.url);
    expect((await client.check({})).status).toBe(ServingStatus.SERVING);
  });
});

/** Reads HTTP/2 frames (type and stream id) off a raw socket until it closes; `closed` resolves with them. */
function h2Frames(socket: net.Socket): { readonly types: number[]; readonly closed: Promise<number[]> } {
  const types: number[] = [];
  let buffered = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      types.push(buffered[3] ?? -1);
      buffered = buffered.subarray(9 + length);
    }
  });
  socket.on("error", () => undefined);
  const closed = new Promise<number[]>((resolve) => socket.once("close", () => {
    resolve(types);
  }));
  return { types, closed };
}

/** A raw TCP connection to `port` that has sent `bytes`. */
async function rawSocket(port: number, ...bytes: Buffer[]): Promise<net.Socket> {
  const socket = net.connect(port, "127.0.0.1");
  cleanups.push(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  for (const b of bytes) socket.write(b);
  return socket;
}

const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const frame = (type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer => {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(stream, 5);
  return Buffer.concat([header, payload]);
};
/** HPACK literal header fields without indexing, new names, no Huffman: enough to open a stream by hand. */
const hpack = (headers: Record<string, string>): Buffer =>
  Buffer.concat(
    Object.entries(headers).flatMap(([name, value]) => [Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]),
  );
const settingsFrame = frame(0x04, 0, 0);
const goawayType = 0x07;
const pingType = 0x06;

describe("idle connections", { timeout: 15_000 }, () => {
  it("closes, after idleTimeoutMs, an HTTP/2 connection that sent only the preface", async () => {
    const { server } = await start({ idleTimeoutMs: 300 });
    const started = Date.now();
    const { closed } = h2Frames(await rawSocket(server.port, preface));
    await closed;
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("sends GOAWAY to, and closes, a session that sent its SETTINGS and no request", async () => {
    const { server, logs } = await start({ idleTimeoutMs: 300 });
    const { closed } = h2Frames(await rawSocket(server.port, preface, settingsFrame));
    expect(await closed).toContain(goawayType);
    expect(logs.filter((l) => l.level >= 40)).toEqual([]);
  });

  it("closes a session once its calls are done, and keeps one whose Watch stream is open but quiet", async () => {
    const { server, health } = await start({ idleTimeoutMs: 300 });
    health.setStatus("foldline.test.v1.Probe", "serving");
    const done = http2.connect(server.url);
    const watching = http2.connect(server.url);
    cleanups.push(
      () => {
        done.destroy();
      },
      () => {
        watching.destroy();
      },
    );
    const doneClosed = new Promise((resolve) => done.once("close", resolve));
    const check = done.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
    check.end(Buffer.alloc(5));
    check.resume();
    await new Promise((resolve) => check.once("close", resolve));
    const watch = watching.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/grpc", te: "trailers" });
    const messages: Buffer[] = [];
    watch.on("data", (chunk: Buffer) => messages.push(chunk));
    const service = Buffer.from("foldline.test.v1.Probe");
    watch.end(envelope(Buffer.from([0x0a, service.length, ...service])));
    await eventually(() => messages.length === 1);

    await doneClosed;
    await sleep(900);
    expect(watching.closed || watching.destroyed).toBe(false);
    // The quiet stream still works.
    health.setStatus("foldline.test.v1.Probe", "not_serving");
    await eventually(() => messages.length === 2);
  });

  it("closes a session whose peer stops answering pings while a stream is open", async () => {
    const { server } = await start({ idleTimeoutMs: 60_000, keepAlivePingMs: 200 });
    // A Watch stream opened by hand on a connection that never acknowledges anything, pings included.
    const headers = frame(0x01, 0x04, 1, hpack({ ":method": "POST", ":scheme": "http", ":path": "/grpc.health.v1.Health/Watch", ":authority": "x", "content-type": "application/grpc", te: "trailers" }));
    const body = frame(0x00, 0x01, 1, Buffer.alloc(5));
    const started = Date.now();
    const { closed, types } = h2Frames(await rawSocket(server.port, preface, settingsFrame, headers, body));
    await eventually(() => types.includes(0x00));
    await closed;
    expect(types).toContain(pingType);
    expect(Date.now() - started).toBeLessThan(5_000);
    await eventually(() => server.inFlight() === 0);
  });

  it("closes idle HTTP/1.1 keep-alive connections after idleTimeoutMs too", async () => {
    const { server } = await start({ idleTimeoutMs: 300 });
    const started = Date.now();
    // A keep-alive request: the server answers, then closes the connection once it has been idle long enough.
    const reply = await rawExchange(
      server.port,
      "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    );
    expect(reply.toString("latin1")).toMatch(/^HTTP\/1\.1 200 /);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});

describe("unknown methods", { timeout: 15_000 }, () => {
  const call = async (url: string, path: string, contentType: string): Promise<RawAnswer> => {
    const session = await openRawSession(url);
    cleanups.push(() => session.close());
    return session.call(path, { "content-type": contentType }, Buffer.alloc(5));
  };

  it("answers gRPC and gRPC-Web with HTTP 200 and grpc-status 12 (UNIMPLEMENTED)", async () => {
    const { server } = await start();
    for (const type of ["application/grpc", "application/grpc+proto", "application/grpc-web+proto"]) {
      const answer = await call(server.url, "/no.such.v1.Service/Method", type);
      expect(answer.status, type).toBe(200);
      expect(grpcStatus(answer), type).toEqual({ code: Code.Unimplemented, message: "unknown method /no.such.v1.Service/Method" });
    }
    // A known service with an unknown method too.
    expect(grpcStatus(await call(server.url, "/grpc.health.v1.Health/Nope", "application/grpc")).code).toBe(Code.Unimplemented);
    await eventually(() => server.inFlight() === 0);
  });

  it("answers Connect with HTTP 404 and the error unimplemented", async () => {
    const { server } = await start();
    for (const type of ["application/proto", "application/json", "application/connect+proto"]) {
      const answer = await call(server.url, "/no.such.v1.Service/Method", type);
      expect(answer.status, type).toBe(404);
      expect(connectError(answer), type).toEqual({ code: "unimplemented", message: "unknown method /no.such.v1.Service/Method" });
    }
  });

  it("bounds the path it echoes", async () => {
    const { server } = await start();
    const answer = await call(server.url, `/${"x".repeat(10_000)}/Method`, "application/grpc");
    const { code, message } = grpcStatus(answer);
    expect(code).toBe(Code.Unimplemented);
    expect(message).toMatch(/^unknown method \/x{90,}… \(cut at 100 of 10008 characters\)$/);
  });
});
