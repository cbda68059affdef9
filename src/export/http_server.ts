/**
 * The master's HTTP endpoint: `/metrics` (Prometheus text), `/status` (JSON),
 * the probes `/ready` and `/live`, and a small index, over HTTP/1.1 with
 * deadlines (see `http1.ts`) and a cap on connections; behind a credential
 * check when one is set (see `auth.ts`).
 *
 * @module
 */
import { formatHostPort, parseHostPort } from "../protocol/host_port.ts";
import { probeListen, serveTcp } from "../runtime/tcp_serve.ts";
import { type MetricsCredentials, type MetricsGate, metricsGate, OPEN_PATHS } from "./auth.ts";
import { DEFAULT_HTTP1_LIMITS, Http1Connection, type Http1Limits } from "./http1.ts";
import { PROMETHEUS_CONTENT_TYPE } from "./prometheus.ts";
import type { Readiness } from "./status.ts";
import { sinceParam } from "./dashboard.ts";

/** Connections the endpoint holds at once; past it, the one waiting longest for a head goes. */
export const MAX_CONNECTIONS = 64;

/** Options of {@linkcode startMetricsServer}. */
export interface MetricsServerOptions {
  /** `HOST:PORT` to listen on (`[::1]:9464` for IPv6); port 0 picks a free one. */
  bind: string;
  /** Renders the `/metrics` body (Prometheus text). */
  metrics: () => string | Promise<string>;
  /** Returns the `/status` document, sent as JSON (a string is sent as is). */
  status: () => unknown;
  /** Whether `/ready` answers 200 or 503; always ready when not given. */
  ready?: () => Readiness;
  /** Told about failures while serving (a throwing `metrics()`, a socket error). */
  onError?: (error: Error) => void;
  /** Deadlines and sizes of each connection; {@linkcode DEFAULT_HTTP1_LIMITS} when not given. */
  limits?: Http1Limits;
  /**
   * When either is set, every path but `/ready` and `/live` answers 401
   * without one of them; open when not given. A function is asked on every
   * request, so that a reload can change the credentials of a running server.
   */
  credentials?: MetricsCredentials | (() => MetricsCredentials);
  /**
   * The dashboard's data since a time (Unix ms), sent as JSON at
   * `/dashboard.json?since=T`; with it, `/` serves the dashboard page instead
   * of the short index.
   */
  dashboard?: (since: number) => unknown;
}

/** A listening metrics server. */
export interface MetricsServer {
  /** Where it listens; `port` is the real one when 0 was asked for. */
  address: { host: string; port: number };
  /** Stops listening and closes every connection, idle keep-alive ones included. */
  close(): Promise<void>;
}

/**
 * Parses a `HOST:PORT` bind address; IPv6 hosts go in brackets.
 *
 * @example Parse an IPv6 bind address
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseBind } from "./http_server.ts";
 * const { host, port } = parseBind("[::1]:9464");
 * assert.ok(host === "::1" && port === 9464);
 * ```
 */
export function parseBind(bind: string): { host: string; port: number } {
  const target = parseHostPort(bind);
  if (target === undefined) {
    throw new SyntaxError(
      `Cannot listen on "${bind}" for metrics: expected HOST:PORT, such as 127.0.0.1:9464`,
    );
  }
  return target;
}

const INDEX = "forklift\n\n/metrics  Prometheus text exposition\n/status   workers as JSON\n" +
  "/ready    200 when the service should get traffic, else 503\n" +
  "/live     200 while the master answers\n";
const ROUTES = new Set(["/", "/metrics", "/status", "/ready", "/live"]);
const DASHBOARD_ROUTES = new Set(["/dashboard.json", "/dashboard.js", "/dashboard.css"]);
const TEXT = "text/plain; charset=utf-8";
/**
 * The dashboard page's content security policy: its own script and
 * stylesheet only (nothing inline), data from its own origin, no framing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DASHBOARD_CSP } from "./http_server.ts";
 * assert.ok(DASHBOARD_CSP.includes("script-src 'self';"));
 * ```
 */
export const DASHBOARD_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; " +
  "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

function reply(method: string, status: number, type: string, body: string, extra?: HeadersInit) {
  const headers = new Headers(extra);
  headers.set("content-type", type);
  headers.set("cache-control", "no-store");
  const bytes = new TextEncoder().encode(body);
  headers.set("content-length", String(bytes.length));
  return new Response(method === "HEAD" ? null : bytes, { status, headers });
}

/**
 * The request handler behind {@linkcode startMetricsServer}: the credential
 * check, routes, HEAD, 404 and 405, and a 500 (reported to `onError`) when
 * rendering fails.
 *
 * @example Answer one request
 * ```ts
 * import assert from "node:assert/strict";
 * import { metricsHandler } from "./http_server.ts";
 * const handle = metricsHandler({ metrics: () => "up 1\n", status: () => ({}) });
 * const res = await handle(new Request("http://localhost/metrics"));
 * assert.ok(res.status === 200);
 * ```
 */
export function metricsHandler(
  options: Omit<MetricsServerOptions, "bind">,
): (request: Request) => Promise<Response> {
  const report = (e: unknown) => {
    try {
      options.onError?.(e instanceof Error ? e : new Error(String(e)));
    } catch {
      // A throwing error handler must not take the server down.
    }
  };
  const credentials = options.credentials;
  const current = typeof credentials === "function" ? credentials : () => credentials;
  // Digests are computed again only when the credentials object changes.
  let seen: MetricsCredentials | undefined;
  let gate: MetricsGate | undefined;
  return async (request) => {
    const now = current();
    if (now !== seen) {
      seen = now;
      gate = now && metricsGate(now);
    }
    const { method } = request;
    const path = new URL(request.url).pathname;
    // In front of the routes, so that a path added later is guarded too, and a
    // 404 tells no one without the credential which paths exist.
    if (
      gate !== undefined && !OPEN_PATHS.has(path) &&
      !gate.admits(request.headers.get("authorization"))
    ) {
      return reply(method, 401, TEXT, "Unauthorized\n", { "www-authenticate": gate.challenge });
    }
    const dashboard = options.dashboard;
    if (!ROUTES.has(path) && !(dashboard !== undefined && DASHBOARD_ROUTES.has(path))) {
      return reply(method, 404, TEXT, "Not found\n");
    }
    if (method !== "GET" && method !== "HEAD") {
      return reply(method, 405, TEXT, "Method not allowed\n", { allow: "GET, HEAD" });
    }
    if (
      dashboard !== undefined && path !== "/dashboard.json" &&
      (path === "/" || DASHBOARD_ROUTES.has(path))
    ) {
      try {
        const { dashboardAsset } = await import("./dashboard_assets.ts");
        const asset = dashboardAsset(path)!;
        // The page gets a policy that lets it load its own files; they keep the strict default.
        const csp = path === "/" ? { "content-security-policy": DASHBOARD_CSP } : undefined;
        return reply(method, 200, asset.type, asset.body, csp);
      } catch (e) {
        report(e);
        return reply(method, 500, TEXT, "Cannot load the dashboard\n");
      }
    }
    if (path === "/") return reply(method, 200, TEXT, INDEX);
    if (path === "/dashboard.json") {
      try {
        return reply(
          method,
          200,
          "application/json; charset=utf-8",
          JSON.stringify(dashboard!(sinceParam(request.url))),
        );
      } catch (e) {
        report(e);
        return reply(method, 500, TEXT, "Cannot render the dashboard's data\n");
      }
    }
    // The master's event loop answered this request: that is what a liveness probe asks.
    if (path === "/live") return reply(method, 200, TEXT, "live\n");
    if (path === "/ready") {
      let state: Readiness;
      try {
        state = options.ready?.() ?? { ready: true, reason: "serving" };
      } catch (e) {
        report(e);
        state = { ready: false, reason: "cannot tell" };
      }
      const body = `${state.ready ? "ready" : "not ready"}: ${state.reason}\n`;
      return reply(method, state.ready ? 200 : 503, TEXT, body);
    }
    if (path === "/metrics") {
      try {
        return reply(method, 200, PROMETHEUS_CONTENT_TYPE, await options.metrics());
      } catch (e) {
        report(e);
        return reply(method, 500, TEXT, "Cannot render metrics\n");
      }
    }
    try {
      const status = await options.status();
      const body = typeof status === "string" ? status : JSON.stringify(status, null, 2) + "\n";
      return reply(method, 200, "application/json; charset=utf-8", body);
    } catch (e) {
      report(e);
      return reply(method, 500, TEXT, "Cannot render status\n");
    }
  };
}

/**
 * Checks, before any worker starts, that the metrics endpoint will be able to
 * listen on `bind`: rejects with an error that names the address, the reason
 * and the setting to change.
 *
 * @example
 * ```ts ignore
 * import { checkMetricsBind } from "./http_server.ts";
 * await checkMetricsBind("127.0.0.1:9464");
 * ```
 */
export async function checkMetricsBind(bind: string): Promise<void> {
  const target = parseBind(bind);
  const where = formatHostPort(target.host, target.port);
  try {
    await probeListen(target.host, target.port);
  } catch (e) {
    throw new Error(
      `Cannot listen on ${where} for metrics: ${
        (e as Error).message
      }; choose another address with --metrics-bind HOST:PORT (or off)`,
      { cause: e },
    );
  }
}

/**
 * Starts the metrics server and resolves once it listens.
 *
 * Routes: `GET /metrics` (Prometheus text), `GET /status` (JSON), `GET /ready`
 * (200 or 503, from `ready`), `GET /live` (200), `GET /` (a short index, or
 * with `dashboard` the dashboard page, its script, stylesheet and data);
 * `HEAD` on each; 404 for other paths and 405 for other methods. With
 * `credentials`, every path but `/ready` and `/live` first answers 401 to a
 * request without a valid `Authorization` header.
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
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const target = parseBind(options.bind);
  const where = formatHostPort(target.host, target.port);
  const handler = metricsHandler(options);
  const limits = options.limits ?? DEFAULT_HTTP1_LIMITS;
  const connections = new Set<Http1Connection>();
  let server;
  try {
    server = await serveTcp({
      host: target.host,
      port: target.port,
      open(stream) {
        if (connections.size >= MAX_CONNECTIONS) {
          // A slow or silent client must not lock out the scraper: the longest wait goes.
          let oldest: Http1Connection | undefined;
          for (const c of connections) {
            if (c.waiting && (oldest === undefined || c.since < oldest.since)) oldest = c;
          }
          if (oldest === undefined) {
            stream.close();
            return { data: () => {}, closed: () => {} };
          }
          oldest.close();
        }
        const conn = new Http1Connection(stream, handler, limits, where);
        connections.add(conn);
        conn.onClose = () => connections.delete(conn);
        return { data: (chunk) => conn.receive(chunk), closed: () => conn.close() };
      },
    });
  } catch (e) {
    throw new Error(`Cannot listen on ${where} for metrics: ${(e as Error).message}`, { cause: e });
  }
  const { address } = server;
  return {
    address,
    close() {
      server.close();
      for (const c of connections) c.close();
      return Promise.resolve();
    },
  };
}
