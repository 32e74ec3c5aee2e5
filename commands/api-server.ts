import { setMaxListeners } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import * as net from "node:net";
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type ConnectRouter,
  type ContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import { errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { compressionBrotli, compressionGzip, connectNodeAdapter, type ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { capMessage } from "./bounded-text.js";
import { toConnectError } from "./error-codes.js";
import { UnknownMethod } from "./errors.js";
import { guardHandlers } from "./request-guard.js";

/** Certificate and private key, PEM, for serving HTTPS (HTTP/2 and HTTP/1.1 chosen by ALPN). */
export interface ApiServerTls {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

/** Options for {@link createApiServer}. */
export interface ApiServerOptions {
  /** Registers the services; called once, before the server listens. */
  readonly routes: (router: ConnectRouter) => void;
  /** Run around every call, first one outermost. */
  readonly interceptors?: readonly Interceptor[];
  /** Address to listen on (default `127.0.0.1`). */
  readonly host?: string;
  /** Port to listen on; 0 or omitted picks a free one (read it from {@link ApiServer.port}). */
  readonly port?: number;
  /** Serve HTTPS instead of cleartext. */
  readonly tls?: ApiServerTls;
  readonly log: Logger;
  /** How long {@link ApiServer.close} waits for calls in flight before cutting them off (default 10 s). */
  readonly shutdownTimeoutMs?: number;
  /**
   * How long a connection with no request in flight stays open (default 65 s): an HTTP/1.1 keep-alive connection
   * between requests, an HTTP/2 session with no open stream (a GOAWAY closes it, including one that sent only
   * its preface). Open streams keep a session, however quiet: a Watch or Execute stream waiting is not idle.
   */
  readonly idleTimeoutMs?: number;
  /**
   * HTTP/2 sessions with open streams are pinged this often (default 60 s; 0: never); one that has not answered
   * the previous ping by the next is taken for a vanished peer and closed, cutting its streams.
   */
  readonly keepAlivePingMs?: number;
}

/**
 * A listening Connect server: Connect, gRPC and gRPC-Web over HTTP/2, and Connect and gRPC-Web over HTTP/1.1,
 * all on one port. Disposing it closes it.
 */
export interface ApiServer extends AsyncDisposable {
  /** `http://host:port`, or `https://` when serving TLS. */
  readonly url: string;
  readonly port: number;
  /**
   * Aborted when {@link ApiServer.close} begins, with a ConnectError (Unavailable) as reason. Long-running
   * streams watch it (directly, or through {@link shutdownSignalKey} in the handler context): they stop taking
   * new work, finish what they started and end, so that the drain does not run into its timeout. This is where
   * to hang `health.shutdown()`.
   */
  readonly shutdownSignal: AbortSignal;
  /** Requests started and not yet answered, across all connections. */
  inFlight(): number;
  /**
   * Shuts down gracefully and resolves once every connection is gone: aborts {@link ApiServer.shutdownSignal},
   * stops accepting connections, sends GOAWAY to HTTP/2 clients, closes idle HTTP/1.1 connections (and every
   * other one once its answer is sent), and waits for the requests in flight, at most `shutdownTimeoutMs`;
   * then it destroys what is left and logs what it cut off. Never rejects; a second call returns the same
   * promise.
   */
  close(): Promise<void>;
}

/**
 * The server's {@link ApiServer.shutdownSignal}, for handlers that are registered before the server exists:
 * `context.values.get(shutdownSignalKey)`. Outside an {@link ApiServer} (say, a router transport in a unit
 * test) it is a signal that never aborts.
 */
export const shutdownSignalKey = createContextKey<AbortSignal>(new AbortController().signal, {
  description: "foldline api server shutdown signal",
});

// Sent first by every HTTP/2 client that speaks cleartext HTTP/2 with prior knowledge (RFC 9113, 3.4).
const http2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
// gRPC clients refuse larger messages by default; refusing them here too gives one clear ResourceExhausted.
const maxMessageBytes = 4 * 1024 * 1024;
// One HTTP/2 connection per client carries all its calls: leave plenty of room for concurrent streams.
const maxConcurrentStreams = 1000;
// Longer than the 60 s idle timeout of the usual load balancers, so that they, not we, close idle connections
// and never send a request down a connection we are closing.
const defaultIdleTimeoutMs = 65_000;
// Far apart enough for any gRPC client's ping policy; finds a peer gone with streams open within two of them.
const defaultKeepAlivePingMs = 60_000;
// Request encodings accepted (those connect-node accepts by default); the request guard decompresses with them too.
const compressions = [compressionGzip, compressionBrotli];
// Connect JSON is read strictly: an unknown or misspelt field is refused, never dropped.
const jsonOptions = { ignoreUnknownFields: false };
// TCP keepalive probes find clients that vanished without a word (a crashed host, a dropped NAT mapping).
const tcpKeepAliveDelayMs = 30_000;
// After the last answer of a drain, HTTP/2 sessions get this long to close by themselves before they are closed.
const sessionGraceMs = 1_000;
// A cleartext connection that sends nothing is dropped after this long, before any HTTP server owns it.
const firstBytesTimeoutMs = 10_000;

type ServerRequest = http.IncomingMessage | http2.Http2ServerRequest;
type ServerResponse = http.ServerResponse | http2.Http2ServerResponse;
// What connect-node hands its fallback: the request and response of onRequest below, typed more loosely.
type FallbackArgs = Parameters<NonNullable<ConnectNodeAdapterOptions["fallback"]>>;

/**
 * Creates a Connect server and resolves once it listens. One `connectNodeAdapter` handler serves every
 * protocol. In cleartext, each connection is routed by its first bytes: the HTTP/2 client preface goes to an
 * HTTP/2 server (h2c with prior knowledge), anything else to an HTTP/1.1 server; with `tls`, ALPN chooses
 * (`h2`, `http/1.1`). HTTP/1.1 has no h2c upgrade: HTTP/2 clients must use prior knowledge.
 *
 * Every request message is checked before the library decodes it (request-guard.ts): one that cannot be decoded
 * is INVALID_ARGUMENT, and Connect JSON refuses unknown fields. A path that names no method is UNIMPLEMENTED in
 * the caller's protocol: HTTP 200 with `grpc-status: 12` for gRPC and gRPC-Web, HTTP 404 with the Connect error
 * `unimplemented` otherwise.
 *
 * The server's shutdown signal is not linked into every handler's `context.signal`: that would cancel the
 * downstream work of unary calls in the middle of the drain that is there to let them finish. Errors of single
 * connections (resets, malformed requests, TLS handshake failures) are logged at debug and never thrown.
 * Rejects when it cannot listen (say, EADDRINUSE).
 */
export async function createApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const { log } = options;
  const host = options.host ?? "127.0.0.1";
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 10_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? defaultIdleTimeoutMs;
  const keepAlivePingMs = options.keepAlivePingMs ?? defaultKeepAlivePingMs;
  const shutdown = new AbortController();
  // Every open stream may listen to it: that is no leak.
  setMaxListeners(0, shutdown.signal);
  const contextValues = (): ContextValues => createContextValues().set(shutdownSignalKey, shutdown.signal);
  const handler = connectNodeAdapter({
    routes: (router) => {
      options.routes(router);
      guardHandlers(router.handlers, { readMaxBytes: maxMessageBytes, compressions, jsonOptions, log });
    },
    interceptors: [...(options.interceptors ?? [])],
    readMaxBytes: maxMessageBytes,
    writeMaxBytes: maxMessageBytes,
    acceptCompression: compressions,
    jsonOptions,
    contextValues,
    fallback: (req, res) => {
      answerUnknownMethod(req, res, log);
    },
  });

  let inFlight = 0;
  // Every accepted connection: TCP sockets, and TLS sockets on top of them.
  const sockets = new Set<net.Socket>();
  // Cleartext connections whose first bytes have not yet decided their protocol.
  const undecided = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  // Wakes close() when a request ends or a connection goes; set only while close() waits.
  let progress: (() => void) | undefined;

  const onSocketError = (err: Error): void => {
    log.debug({ err }, "api connection error");
  };
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on("error", onSocketError);
    socket.once("close", () => {
      sockets.delete(socket);
      progress?.();
    });
  };
  const onSession = (session: http2.ServerHttp2Session): void => {
    sessions.add(session);
    superviseSession(session, { idleTimeoutMs, keepAlivePingMs, log });
    session.once("close", () => {
      sessions.delete(session);
      progress?.();
    });
    if (shutdown.signal.aborted) session.close();
  };
  const onSessionError = (err: Error): void => {
    log.debug({ err }, "api http/2 session error");
  };

  const http2Options = {
    settings: { maxConcurrentStreams },
  } satisfies http2.ServerOptions;
  const http1Options = {
    keepAliveTimeout: idleTimeoutMs,
  } satisfies http.ServerOptions;
  const tcpOptions = {
    noDelay: true,
    keepAlive: true,
    keepAliveInitialDelay: tcpKeepAliveDelayMs,
  } satisfies net.ServerOpts;

  const onRequest = (req: ServerRequest, res: ServerResponse): void => {
    inFlight++;
    // A request is done once its answer is complete ("finish"), even if the client keeps its side of an HTTP/2
    // stream open (a streaming client that has not half-closed): only a reset would close that, and the drain
    // below does not wait for it. "close" covers answers cut off before they finished.
    let done = false;
    const finished = (): void => {
      if (done) return;
      done = true;
      inFlight--;
      if (shutdown.signal.aborted) {
        // The connection this answer went out on may now be idle: close it rather than wait for the client.
        closeIdleHttp1();
        progress?.();
      }
    };
    res.once("finish", finished);
    res.once("close", finished);
    // An HTTP/2 answer emits "finish" only when its stream closes, that is once the client has closed its side
    // too; the stream's own "finish" tells when the server has written everything.
    if ("stream" in res) res.stream.once("finish", finished);
    if (shutdown.signal.aborted && !("stream" in req)) res.setHeader("connection", "close");
    try {
      handler(req, res);
    } catch (err) {
      // connect-node throws synchronously when it cannot build the request URL (an HTTP/1.0 request without
      // Host, a malformed Host); thrown inside the server's "request" event, that would end the process.
      log.debug({ err, url: req.url }, "api request refused: malformed");
      if (res.headersSent) res.destroy();
      else {
        res.statusCode = 400;
        res.end();
      }
    }
  };

  let listener: net.Server;
  let closeIdleHttp1: () => void;
  let closeHttp1Tracking: () => void;
  if (options.tls === undefined) {
    const h1 = http.createServer(http1Options, onRequest);
    // Node tracks HTTP/1.1 connections (for closeIdleConnections, headersTimeout and requestTimeout) only from
    // the server's "listening" event, and this server never listens itself: it is handed its connections.
    h1.emit("listening");
    const h2 = http2.createServer(http2Options, onRequest);
    h2.on("session", onSession);
    h2.on("sessionError", onSessionError);
    listener = net.createServer(tcpOptions, (socket) => {
      track(socket);
      routeByFirstBytes(socket, { h1, h2, undecided, log });
    });
    closeIdleHttp1 = () => {
      h1.closeIdleConnections();
    };
    closeHttp1Tracking = () => {
      // Has no listening handle to close; this closes idle connections and stops the timeout checks.
      h1.close();
    };
  } else {
    const secure = http2.createSecureServer(
      { ...tcpOptions, ...http2Options, ...options.tls, allowHTTP1: true, ALPNProtocols: ["h2", "http/1.1"] },
      onRequest,
    );
    // The HTTP/1.1 side of a secure HTTP/2 server reads keepAliveTimeout from it, but nothing sets it there,
    // which leaves idle HTTP/1.1 connections open for ever.
    Object.assign(secure, http1Options);
    secure.on("connection", track);
    secure.on("secureConnection", track);
    // Node itself then drops the connection; this only records why.
    secure.on("tlsClientError", (err) => {
      log.debug({ err }, "api tls handshake failed");
    });
    secure.on("session", onSession);
    secure.on("sessionError", onSessionError);
    listener = secure;
    // Node has this method (for the HTTP/1.1 side) but its type declarations do not.
    const secureHttp1 = secure as unknown as Partial<Pick<http.Server, "closeIdleConnections">>;
    closeIdleHttp1 = () => {
      secureHttp1.closeIdleConnections?.();
    };
    closeHttp1Tracking = () => {
      // Closing the listener (below) already closes idle HTTP/1.1 connections and stops the timeout checks.
    };
  }

  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(options.port ?? 0, host, () => {
      listener.off("error", reject);
      resolve();
    });
  });
  // Accept failures (EMFILE and the like) are reported here; the server keeps listening.
  listener.on("error", (err) => {
    log.error({ err }, "api server error");
  });
  const listenerClosed = new Promise<void>((resolve) => listener.once("close", resolve));
  const port = (listener.address() as AddressInfo).port;
  const url = `${options.tls === undefined ? "http" : "https"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
  log.info({ url }, "api server listening");

  const waitUntil = async (done: () => boolean, deadline: number): Promise<boolean> => {
    while (!done()) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        progress = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      progress = undefined;
    }
    return true;
  };

  const drain = async (): Promise<void> => {
    const started = Date.now();
    const deadline = started + shutdownTimeoutMs;
    log.info({ inFlight, connections: sockets.size }, "api server draining");
    shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
    listener.close();
    for (const socket of undecided) socket.destroy();
    for (const session of sessions) session.close();
    closeHttp1Tracking();
    closeIdleHttp1();

    const drained = await waitUntil(() => inFlight === 0, deadline);
    // HTTP/2 sessions close by themselves once their last stream and GOAWAY are flushed; HTTP/1.1 connections
    // left now carry no request (a response, once finished, is already with the kernel), so they can go.
    // A session still open then holds only streams whose answers are complete but whose clients have not
    // closed their side; a moment lets the last frames reach the socket before the session goes.
    const flushed = drained && (await waitUntil(() => sessions.size === 0, Math.min(deadline, Date.now() + sessionGraceMs)));
    if (!drained) {
      log.warn(
        { inFlight, connections: sockets.size, shutdownTimeoutMs },
        "api server shutdown timed out: cutting off requests in flight",
      );
    } else if (!flushed) {
      log.info({ sessions: sessions.size }, "api server closing http/2 sessions whose clients keep finished streams open");
    }
    for (const session of sessions) session.destroy();
    for (const socket of sockets) socket.destroy();
    await listenerClosed;
    log.info({ ms: Date.now() - started }, "api server closed");
  };

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= drain());

  return {
    url,
    port,
    shutdownSignal: shutdown.signal,
    inFlight: () => inFlight,
    close,
    [Symbol.asyncDispose]: close,
  };
}

interface Http1And2 {
  readonly h1: http.Server;
  readonly h2: http2.Http2Server;
  readonly undecided: Set<net.Socket>;
  readonly log: Logger;
}

/**
 * Hands a cleartext connection to the HTTP/2 server when it opens with the client preface and to the HTTP/1.1
 * server otherwise, with the bytes read so far put back. Reads until it has the whole preface or the bytes
 * already differ from it, so a preface split across packets is still recognised.
 */
function routeByFirstBytes(socket: net.Socket, { h1, h2, undecided, log }: Http1And2): void {
  let head: Buffer = Buffer.alloc(0);
  const stopListening = (): void => {
    undecided.delete(socket);
    socket.off("data", onData);
    socket.off("end", onEnd);
    socket.off("timeout", onTimeout);
    socket.setTimeout(0);
  };
  const onData = (chunk: Buffer): void => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const compared = Math.min(head.length, http2Preface.length);
    const isHttp2 = head.subarray(0, compared).equals(http2Preface.subarray(0, compared));
    if (isHttp2 && head.length < http2Preface.length) return;
    // Pause first: a flowing socket without a "data" listener drops what it reads.
    socket.pause();
    stopListening();
    socket.unshift(head);
    if (isHttp2) {
      // The HTTP/2 session reads the unshifted bytes from the socket's buffer itself.
      h2.emit("connection", socket);
    } else {
      h1.emit("connection", socket);
      // The HTTP/1.1 parser takes buffered bytes as "data" events, which need a flowing socket.
      socket.resume();
    }
  };
  const onEnd = (): void => {
    stopListening();
    socket.destroy();
  };
  const onTimeout = (): void => {
    log.debug("api connection sent nothing: closed");
    stopListening();
    socket.destroy();
  };
  undecided.add(socket);
  socket.on("data", onData);
  socket.once("end", onEnd);
  socket.once("timeout", onTimeout);
  socket.setTimeout(firstBytesTimeoutMs);
}

/** Options of {@link superviseSession}. */
interface SessionSupervision {
  readonly idleTimeoutMs: number;
  readonly keepAlivePingMs: number;
  readonly log: Logger;
}

/**
 * Closes an HTTP/2 session (GOAWAY) once it has had no open stream for `idleTimeoutMs`, counted from its start
 * and from the end of its last stream, and destroys one that has open streams but stops answering pings.
 */
function superviseSession(session: http2.ServerHttp2Session, { idleTimeoutMs, keepAlivePingMs, log }: SessionSupervision): void {
  let open = 0;
  let idle: NodeJS.Timeout | undefined;
  let unanswered = false;
  const gone = (): boolean => session.closed || session.destroyed;
  const closeIdle = (): void => {
    if (gone() || open > 0) return;
    log.debug({ idleTimeoutMs }, "api http/2 session idle: closed");
    // With no stream open, the session ends once its GOAWAY is out, whatever the peer does.
    session.close();
  };
  const armIdle = (): void => {
    idle = setTimeout(closeIdle, idleTimeoutMs);
    idle.unref();
  };
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open++;
    clearTimeout(idle);
    stream.once("close", () => {
      open--;
      if (open === 0 && !gone()) armIdle();
    });
  });
  const pinger =
    keepAlivePingMs > 0
      ? setInterval(() => {
          if (gone()) return;
          if (unanswered) {
            log.debug({ keepAlivePingMs }, "api http/2 peer stopped answering pings: closed");
            session.destroy();
            return;
          }
          if (open === 0) return;
          unanswered = true;
          session.ping((err) => {
            if (err === null) unanswered = false;
          });
        }, keepAlivePingMs)
      : undefined;
  pinger?.unref();
  armIdle();
  session.once("close", () => {
    clearTimeout(idle);
    clearInterval(pinger);
  });
}

/**
 * Answers a request for a path that names no method: gRPC and gRPC-Web clients read the status from the
 * headers of an HTTP 200 answer (trailers-only), Connect clients from the HTTP status and a JSON error body.
 */
function answerUnknownMethod(req: FallbackArgs[0], res: FallbackArgs[1], log: Logger): void {
  const path = (req.url ?? "").split("?", 1)[0] ?? "";
  const err = toConnectError(new UnknownMethod(capMessage(path, 100)), log);
  const type = req.headers["content-type"] ?? "";
  if (/^application\/grpc/i.test(type)) {
    const status = new Headers();
    setTrailerStatus(status, err);
    const headers = {
      "content-type": /^application\/grpc-web/i.test(type) ? "application/grpc-web+proto" : "application/grpc+proto",
      ...Object.fromEntries(status),
    };
    if ("stream" in res && !res.stream.destroyed) {
      // One HEADERS frame that ends the stream: what gRPC calls a trailers-only answer.
      res.stream.respond({ ":status": 200, ...headers }, { endStream: true });
      return;
    }
    res.writeHead(200, headers);
    res.end();
    return;
  }
  const body = errorToJsonBytes(err, {});
  // Connect names no procedure-not-found status of its own: like connect-go's router, answer 404, which Connect
  // clients read as unimplemented even without the body.
  res.writeHead(404, { "content-type": "application/json", "content-length": body.byteLength });
  res.end(body);
}
