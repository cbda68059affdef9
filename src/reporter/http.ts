/**
 * Timing of fetch-style request handlers and of `node:http` requests:
 * `http.server.request.duration` with the request method, the response status
 * and, when the app or its framework named it, the route. Shared by the
 * wrapped `Deno.serve` / `Bun.serve`, the hooked `node:http` servers and
 * `instrument()`.
 *
 * @module
 */

import type { Attributes } from "../protocol/messages.ts";
import { Histogram, HTTP_DURATION_BOUNDARIES } from "./instruments.ts";
import type { Storage } from "./storage.ts";

/** Name of the request duration histogram. */
export const HTTP_DURATION = "http.server.request.duration";

/** A fetch-style handler: `(request, ...rest) => Response | Promise<Response>`. */
// deno-lint-ignore no-explicit-any
export type FetchHandler = (this: any, req: Request, ...rest: any[]) => unknown;

const METHODS: Record<string, string> = {
  GET: "GET",
  HEAD: "HEAD",
  POST: "POST",
  PUT: "PUT",
  DELETE: "DELETE",
  CONNECT: "CONNECT",
  OPTIONS: "OPTIONS",
  TRACE: "TRACE",
  PATCH: "PATCH",
};

/**
 * Returns the `http.request.method` attribute for a method: the method when
 * standard, `_OTHER` otherwise.
 *
 * @example Normalise methods
 * ```ts
 * import { normaliseMethod } from "./http.ts";
 * console.assert(normaliseMethod("GET") === "GET");
 * console.assert(normaliseMethod("PURGE") === "_OTHER");
 * ```
 */
export function normaliseMethod(method: string): string {
  return Object.hasOwn(METHODS, method) ? METHODS[method] : "_OTHER";
}

function statusOf(res: unknown): number {
  if (res === undefined || res === null) return 101; // Bun: upgraded to a WebSocket
  const status = (res as { status?: unknown }).status;
  return typeof status === "number" ? status : 500;
}

/** A `node:http` request as the timing reads it (`IncomingMessage`, Express's `req`). */
export interface NodeRequest {
  method?: string;
  /** Express: the route that matched, once it has. */
  route?: { path?: unknown };
  /** Express: where the router that matched is mounted. */
  baseUrl?: unknown;
}

/** A `node:http` response as the timing reads it (`ServerResponse`). */
export interface NodeResponse {
  statusCode?: number;
  once(event: "close", listener: (this: NodeResponse) => void): unknown;
}

/** Attribute sets kept for reuse, at most. */
const MAX_ATTRIBUTE_SETS = 512;

const STARTED = Symbol("forklift.started");
const REQUEST = Symbol("forklift.request");

/**
 * The route template Express matched for a request (`req.baseUrl` +
 * `req.route.path`, as `"/api/items/:id"`), or undefined when none did or the
 * route is not a string (a RegExp path would name raw paths).
 *
 * @example
 * ```ts
 * import { expressRoute } from "./http.ts";
 * console.assert(expressRoute({ baseUrl: "/api", route: { path: "/items/:id" } }) === "/api/items/:id");
 * console.assert(expressRoute({}) === undefined);
 * ```
 */
export function expressRoute(req: NodeRequest): string | undefined {
  const path = req.route?.path;
  if (typeof path !== "string") return undefined;
  return typeof req.baseUrl === "string" ? req.baseUrl + path : path;
}

/**
 * The HTTP server metrics of one process and the wrappers that feed them.
 *
 * @example Time a handler
 * ```ts
 * import { Storage } from "./storage.ts";
 * import { HttpMetrics } from "./http.ts";
 * const http = new HttpMetrics(new Storage());
 * const handler = http.wrap((_req: Request) => new Response("ok"), "/");
 * await handler(new Request("http://localhost/"));
 * console.assert(http.requests === 1);
 * ```
 */
export class HttpMetrics {
  /** Requests completed (handler returned or threw) since start. */
  requests = 0;
  /** Servers wrapped by the runtime hook; `instrument()` then only names routes. */
  wrappedServers = 0;
  readonly #duration: Histogram;
  readonly #routes = new WeakMap<object, string>();
  #routesUsed = false;
  /** Attribute sets already built, by route ("" for none), method and status. */
  readonly #sets = new Map<string, Map<string, Map<number, Attributes>>>();
  #setCount = 0;
  /** Records a `node:http` response when it closes; `this` is the response. */
  readonly #nodeClosed: (this: NodeResponse) => void;

  /** Creates the metrics in `storage`. */
  constructor(storage: Storage) {
    // deno-lint-ignore no-this-alias
    const metrics = this;
    this.#nodeClosed = function (this: NodeResponse) {
      const res = this as NodeResponse & { [STARTED]?: number; [REQUEST]?: NodeRequest };
      const req = res[REQUEST];
      const t0 = res[STARTED];
      if (req === undefined || t0 === undefined) return;
      res[REQUEST] = undefined;
      const status = typeof res.statusCode === "number" ? res.statusCode : 500;
      metrics.done(req as unknown as Request, status, t0, expressRoute(req));
    };
    this.#duration = new Histogram(storage, HTTP_DURATION, {
      unit: "s",
      description: "Duration of HTTP server requests",
      boundaries: HTTP_DURATION_BOUNDARIES,
    });
  }

  /**
   * Times one `node:http` request, from now until its response closes
   * (finished, or cut off by the client).
   */
  nodeRequest(req: NodeRequest, res: NodeResponse): void {
    if (typeof res?.once !== "function") return;
    const r = res as NodeResponse & { [STARTED]?: number; [REQUEST]?: NodeRequest };
    r[STARTED] = performance.now();
    r[REQUEST] = req;
    res.once("close", this.#nodeClosed);
  }

  /**
   * Names the route of `req` (`http.route`), e.g. `"/users/:id"`: a fetch
   * `Request`, or a `node:http` request.
   */
  setRoute(req: Request | object, route: string): void {
    if (typeof req !== "object" || req === null) return;
    this.#routesUsed = true;
    this.#routes.set(req, String(route));
  }

  /** Records one finished request that started at `t0` (`performance.now()`). */
  done(req: Request, status: number, t0: number, route: string | undefined): void {
    const seconds = (performance.now() - t0) / 1000;
    this.requests++;
    try {
      const method = normaliseMethod(req.method);
      if (route === undefined && this.#routesUsed) route = this.#routes.get(req);
      this.#duration.record(seconds, this.#attributes(method, status, route));
    } catch {
      // Never let metrics reach the request.
    }
  }

  /**
   * The attributes of a request's duration. The same few sets recur: each is
   * built once and reused, so a request allocates none (bounded, for apps
   * with many routes or odd statuses).
   */
  #attributes(method: string, status: number, route: string | undefined): Attributes {
    const byMethod = this.#sets.get(route ?? "");
    const byStatus = byMethod?.get(method);
    const known = byStatus?.get(status);
    if (known !== undefined) return known;
    const attributes: Attributes = route === undefined
      ? { "http.request.method": method, "http.response.status_code": status }
      : { "http.request.method": method, "http.response.status_code": status, "http.route": route };
    if (this.#setCount >= MAX_ATTRIBUTE_SETS) return attributes;
    this.#setCount++;
    if (byStatus !== undefined) byStatus.set(status, attributes);
    else if (byMethod !== undefined) byMethod.set(method, new Map([[status, attributes]]));
    else this.#sets.set(route ?? "", new Map([[method, new Map([[status, attributes]])]]));
    return attributes;
  }

  /**
   * Wraps a handler so each call is timed. A handler that throws (or rejects)
   * is recorded as status 500 and the error goes on to the caller.
   */
  wrap<H extends FetchHandler>(handler: H, route?: string): H {
    // deno-lint-ignore no-this-alias
    const metrics = this;
    // Two fixed arguments cover Deno (req, info) and Bun (req, server) with no
    // rest array per request.
    const timed = function (this: unknown, req: Request, extra: unknown): unknown {
      const t0 = performance.now();
      let res: unknown;
      try {
        res = arguments.length <= 2
          ? handler.call(this, req, extra)
          : handler.apply(this, arguments as unknown as [Request]);
      } catch (error) {
        metrics.done(req, 500, t0, route);
        throw error;
      }
      // A property miss is cheaper than `instanceof Response` (a Deno getter walk).
      if (typeof (res as { then?: unknown } | null)?.then === "function") {
        return metrics.settle(res as Promise<unknown>, req, t0, route);
      }
      metrics.done(req, statusOf(res), t0, route);
      return res;
    };
    return timed as unknown as H;
  }

  /** Waits for an async handler's response and records it. */
  async settle(
    pending: Promise<unknown>,
    req: Request,
    t0: number,
    route: string | undefined,
  ): Promise<unknown> {
    let res: unknown;
    try {
      res = await pending;
    } catch (error) {
      this.done(req, 500, t0, route);
      throw error;
    }
    this.done(req, statusOf(res), t0, route);
    return res;
  }

  /**
   * Wraps a handler for `instrument()`: timed like a wrapped server, unless a
   * wrapped server already times this process's requests, in which case it
   * only names the route (no request is counted twice).
   */
  instrument<H extends FetchHandler>(handler: H, route?: string): H {
    const timed = this.wrap(handler, route);
    // deno-lint-ignore no-this-alias
    const metrics = this;
    const outer = function (this: unknown, req: Request): unknown {
      if (metrics.wrappedServers === 0) {
        return timed.apply(this, arguments as unknown as [Request]);
      }
      if (route !== undefined) metrics.setRoute(req, route);
      return handler.apply(this, arguments as unknown as [Request]);
    };
    return outer as unknown as H;
  }
}
