/**
 * The master's small HTTP server: `/metrics` for Prometheus and `/status` for
 * `forklift status`, built on `node:http` so it runs the same under Deno and
 * Bun.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { PROMETHEUS_CONTENT_TYPE } from "./prometheus.ts";

/** Options of {@linkcode startMetricsServer}. */
export interface MetricsServerOptions {
  /** `HOST:PORT` to listen on (`[::1]:9464` for IPv6); port 0 picks a free one. */
  bind: string;
  /** Renders the `/metrics` body (Prometheus text). */
  metrics: () => string | Promise<string>;
  /** Returns the `/status` document, sent as JSON (a string is sent as is). */
  status: () => unknown;
  /** Told about failures while serving (a throwing `metrics()`, a socket error). */
  onError?: (error: Error) => void;
}

/** A listening metrics server. */
export interface MetricsServer {
  /** Where it listens; `port` is the real one when 0 was asked for. */
  address: { host: string; port: number };
  /** Stops listening and closes every connection, idle keep-alive ones included. */
  close(): Promise<void>;
}

type _SystemError = Error & { code?: string };

const _INDEX = "forklift\n\n/metrics  Prometheus text exposition\n/status   workers as JSON\n";

/**
 * Parses a `HOST:PORT` bind address; IPv6 hosts go in brackets.
 *
 * @example Parse an IPv6 bind address
 * ```ts
 * import { parseBind } from "./http_server.ts";
 * const { host, port } = parseBind("[::1]:9464");
 * console.assert(host === "::1" && port === 9464);
 * ```
 */
export function parseBind(bind: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]*)\]|([^:\[\]]*)):([0-9]{1,5})$/.exec(bind);
  const port = match ? Number(match[3]) : NaN;
  const host = match ? (match[1] ?? match[2]) : "";
  if (!match || host === "" || port > 65535) {
    throw new SyntaxError(
      `Cannot listen on "${bind}" for metrics: expected HOST:PORT, such as 127.0.0.1:9464`,
    );
  }
  return { host, port };
}

/**
 * Starts the metrics server and resolves once it listens.
 *
 * Routes: `GET /metrics` (Prometheus text), `GET /status` (JSON), `GET /` (a
 * short index); `HEAD` on each; 404 for other paths and 405 for other methods.
 * A bind failure rejects with an `Error` saying where and why, with the
 * system error as its `cause`.
 *
 * @example Serve metrics on a free port
 * ```ts ignore
 * import { startMetricsServer } from "./http_server.ts";
 * const server = await startMetricsServer({
 *   bind: "127.0.0.1:0",
 *   metrics: () => "# HELP up Up\n# TYPE up gauge\nup 1\n",
 *   status: () => ({ ok: true }),
 * });
 * const res = await fetch(`http://127.0.0.1:${server.address.port}/metrics`);
 * console.log(await res.text());
 * await server.close();
 * ```
 */
export function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  let target: { host: string; port: number };
  try {
    target = parseBind(options.bind);
  } catch (e) {
    return Promise.reject(e);
  }
  const report = (e: unknown) => {
    try {
      options.onError?.(e instanceof Error ? e : new Error(String(e)));
    } catch {
      // A throwing error handler must not take the server down.
    }
  };

  const sockets = new Map<Socket, { busy: boolean }>();
  let closing = false;
  const server = createServer((req, res) => {
    const state = sockets.get(req.socket);
    if (state) state.busy = true;
    res.on("finish", () => {
      if (state) state.busy = false;
      if (closing) req.socket.destroy();
    });
    _handle(req, res, options, report).catch((e) => {
      report(e);
      if (!res.headersSent) _send(req, res, 500, "text/plain; charset=utf-8", "Internal error\n");
      else res.destroy();
    });
  });
  server.on("connection", (socket: Socket) => {
    if (closing) {
      socket.destroy();
      return;
    }
    sockets.set(socket, { busy: false });
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {/* the client went away */});
  });
  server.on("clientError", (_e: Error, socket: Socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });

  const where = `${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`;
  const fail = (e: _SystemError) =>
    new Error(`Cannot listen on ${where} for metrics: ${_reason(e)}`, { cause: e });
  return _resolve(target.host).then(
    (address) =>
      new Promise<MetricsServer>((resolve, reject) => {
        const onListenError = (e: _SystemError) => reject(fail(e));
        server.once("error", onListenError);
        server.listen(target.port, address, () => {
          server.off("error", onListenError);
          server.on("error", report);
          const bound = server.address();
          resolve({
            address: typeof bound === "object" && bound !== null
              ? { host: bound.address, port: bound.port }
              : { host: address, port: target.port },
            close: () =>
              new Promise<void>((done) => {
                if (closing) {
                  done();
                  return;
                }
                closing = true;
                server.close(() => done());
                for (const [socket, state] of sockets) if (!state.busy) socket.destroy();
              }),
          });
        });
      }),
    (e: _SystemError) => Promise.reject(fail(e)),
  );
}

/** Resolves a host name the same way on every runtime (they disagree on errors). */
async function _resolve(host: string): Promise<string> {
  if (isIP(host) !== 0) return host;
  return (await lookup(host)).address;
}

async function _handle(
  req: IncomingMessage,
  res: ServerResponse,
  options: MetricsServerOptions,
  report: (e: unknown) => void,
): Promise<void> {
  const path = (req.url ?? "/").split("?")[0];
  const known = path === "/" || path === "/metrics" || path === "/status";
  if (!known) {
    _send(req, res, 404, "text/plain; charset=utf-8", "Not found\n");
    return;
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    _send(req, res, 405, "text/plain; charset=utf-8", "Method not allowed\n");
    return;
  }
  if (path === "/") {
    _send(req, res, 200, "text/plain; charset=utf-8", _INDEX);
    return;
  }
  if (path === "/metrics") {
    let body: string;
    try {
      body = await options.metrics();
    } catch (e) {
      report(e);
      _send(req, res, 500, "text/plain; charset=utf-8", "Cannot render metrics\n");
      return;
    }
    _send(req, res, 200, PROMETHEUS_CONTENT_TYPE, body);
    return;
  }
  let body: string;
  try {
    const status = await options.status();
    body = typeof status === "string" ? status : JSON.stringify(status, null, 2) + "\n";
  } catch (e) {
    report(e);
    _send(req, res, 500, "text/plain; charset=utf-8", "Cannot render status\n");
    return;
  }
  _send(req, res, 200, "application/json; charset=utf-8", body);
}

function _send(
  req: IncomingMessage,
  res: ServerResponse,
  code: number,
  contentType: string,
  body: string,
): void {
  const bytes = Buffer.from(body, "utf8");
  res.statusCode = code;
  res.setHeader("Content-Type", contentType);
  res.setHeader("Content-Length", String(bytes.length));
  res.setHeader("Cache-Control", "no-store");
  if (req.method === "HEAD") res.end();
  else res.end(bytes);
}

function _reason(e: _SystemError): string {
  switch (e.code) {
    case "EADDRINUSE":
      return "address already in use";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EADDRNOTAVAIL":
    case "EINVAL":
      return "address not available on this machine";
    case "ENOTFOUND":
    case "EAI_NONAME":
    case "EAI_AGAIN":
      return "unknown host";
    default:
      return e.message || String(e.code ?? "unknown error");
  }
}
