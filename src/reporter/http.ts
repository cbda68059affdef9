/**
 * Timing of fetch-style request handlers and of `node:http` requests:
 * `http.server.request.duration` with the request method, the response status
 * and, when the app or its framework named it, the route. Shared by the
 * wrapped `Deno.serve` / `Bun.serve`, the hooked `node:http` servers and
 * `instrument()`.
 *
 * @module
 */

import { type BoundHistogram, Histogram, HTTP_DURATION_BOUNDARIES } from "./instruments.ts";
import type { Storage } from "./storage.ts";

/** Name of the request duration histogram. */
export const HTTP_DURATION = "http.server.request.duration";

/** A fetch-style handler: `(request, ...rest) => Response | Promise<Response>`. */
// deno-lint-ignore no-explicit-any
export type FetchHandler = (this: any, req: Request, ...rest: any[]) => unknown;

/** `http.request.method` values: the standard methods, then `_OTHER`, by {@linkcode methodIndex}. */
const METHODS = [
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "PATCH",
  "_OTHER",
] as const;

/**
 * The index in METHODS of a request's method. A switch compares the
 * characters; a property lookup would first intern the runtime's string.
 */
function methodIndex(method: unknown): number {
  switch (method) {
    case "GET":
      return 0;
    case "HEAD":
      return 1;
    case "POST":
      return 2;
    case "PUT":
      return 3;
    case "DELETE":
      return 4;
    case "CONNECT":
      return 5;
    case "OPTIONS":
      return 6;
    case "TRACE":
      return 7;
    case "PATCH":
      return 8;
    default:
      return 9;
  }
}

/**
 * Returns the `http.request.method` attribute for a method: the method when
 * standard, `_OTHER` otherwise.
 *
 * @example Normalise methods
 * ```ts
 * import assert from "node:assert/strict";
 * import { normaliseMethod } from "./http.ts";
 * assert.ok(normaliseMethod("GET") === "GET");
 * assert.ok(normaliseMethod("PURGE") === "_OTHER");
 * ```
 */
export function normaliseMethod(method: string): string {
  return METHODS[methodIndex(method)];
}

function statusOf(res: unknown): number {
  if (res === undefined || res === null) return 101; // Bun: upgraded to a WebSocket
  try {
    const status = (res as { status?: unknown }).status;
    return typeof status === "number" ? status : 500;
  } catch {
    return 500; // a status getter that throws: never let it reach the server
  }
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
}

/** Attribute sets kept for reuse, at most. */
const MAX_ATTRIBUTE_SETS = 512;

const STARTED = Symbol("forklift.started");
const REQUEST = Symbol("forklift.request");

/**
 * A `node:http` response being timed: when its request started, and that
 * request when the response does not name it as `res.req`.
 */
type MarkedResponse = NodeResponse & {
  req?: unknown;
  [STARTED]?: number;
  [REQUEST]?: NodeRequest;
};

/**
 * The route template Express matched for a request (`req.baseUrl` +
 * `req.route.path`, as `"/api/items/:id"`), or undefined when none did or the
 * route is not a string (a RegExp path would name raw paths).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { expressRoute } from "./http.ts";
 * assert.ok(expressRoute({ baseUrl: "/api", route: { path: "/items/:id" } }) === "/api/items/:id");
 * assert.ok(expressRoute({}) === undefined);
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
 * import assert from "node:assert/strict";
 * import { Storage } from "./storage.ts";
 * import { HttpMetrics } from "./http.ts";
 * const http = new HttpMetrics(new Storage());
 * const handler = http.wrap((_req: Request) => new Response("ok"), "/");
 * await handler(new Request("http://localhost/"));
 * assert.ok(http.requests === 1);
 * ```
 */
export class HttpMetrics {
  /** Requests completed (handler returned or threw) since start. */
  requests = 0;
  /**
   * Requests started and not completed yet: one add and one subtract a
   * request, read at each harvest (`http.server.active_requests`).
   */
  active = 0;
  /** Servers wrapped by the runtime hook; `instrument()` then only names routes. */
  wrappedServers = 0;
  readonly #duration: Histogram;
  readonly #routes = new WeakMap<object, string>();
  #routesUsed = false;
  /**
   * The duration histogram bound to each attribute set already built: by
   * `method index * 1000 + status` for requests without a route, and the same
   * per route for the others. A request allocates nothing and looks no
   * series up (bounded, for apps with many routes or odd statuses).
   */
  readonly #plain = new Map<number, BoundHistogram>();
  readonly #routed = new Map<string, Map<number, BoundHistogram>>();
  #setCount = 0;

  /** Creates the metrics in `storage`. */
  constructor(storage: Storage) {
    this.#duration = new Histogram(storage, HTTP_DURATION, {
      unit: "s",
      description: "Duration of HTTP server requests",
      boundaries: HTTP_DURATION_BOUNDARIES,
    });
  }

  /**
   * Starts timing one `node:http` request; {@linkcode HttpMetrics.nodeResponded}
   * records it when the app ends its response.
   */
  nodeRequest(req: NodeRequest, res: NodeResponse): void {
    if (typeof res !== "object" || res === null || typeof req !== "object" || req === null) return;
    const r = res as MarkedResponse;
    if (r[STARTED] === undefined) this.active++;
    r[STARTED] = performance.now();
    // Both runtimes' responses name their request (`res.req`): the response
    // then gains one slot, not two (each one a shape change on Bun).
    if (r.req !== req) r[REQUEST] = req;
    else if (r[REQUEST] !== undefined) r[REQUEST] = undefined;
  }

  /**
   * Records a `node:http` request whose response the app just ended
   * (`res.end()`), once; a response this process did not time is ignored.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Storage } from "./storage.ts";
   * import { HttpMetrics } from "./http.ts";
   * const http = new HttpMetrics(new Storage());
   * const req = { method: "GET" };
   * const res = { statusCode: 204 };
   * http.nodeRequest(req, res);
   * http.nodeResponded(res);
   * http.nodeResponded(res); // a second end() is not a second request
   * assert.ok(http.requests === 1);
   * ```
   */
  nodeResponded(res: NodeResponse): void {
    const r = res as MarkedResponse;
    const t0 = r[STARTED];
    if (t0 === undefined) return;
    r[STARTED] = undefined;
    const req = r[REQUEST] ?? r.req as NodeRequest;
    const status = typeof r.statusCode === "number" ? r.statusCode : 500;
    this.done(req as unknown as Request, status, t0, expressRoute(req));
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
    this.active--;
    try {
      const method = methodIndex(req.method);
      if (route === undefined && this.#routesUsed) route = this.#routes.get(req);
      this.#timer(method, status, route).record(seconds);
    } catch {
      // Never let metrics reach the request.
    }
  }

  /**
   * The duration histogram bound to a request's attributes. The same few sets
   * recur: each is built once and reused.
   */
  #timer(method: number, status: number, route: string | undefined): BoundHistogram {
    // An integer status below 1000 (any real one) packs with the method into one key.
    const key = status >= 0 && status < 1000 && (status | 0) === status
      ? method * 1000 + status
      : -1;
    let byKey: Map<number, BoundHistogram> | undefined = this.#plain;
    if (route !== undefined) byKey = this.#routed.get(route);
    const known = byKey?.get(key);
    if (known !== undefined) return known;
    const name = METHODS[method];
    const timer = this.#duration.bind(
      route === undefined
        ? { "http.request.method": name, "http.response.status_code": status }
        : { "http.request.method": name, "http.response.status_code": status, "http.route": route },
    );
    if (key < 0 || this.#setCount >= MAX_ATTRIBUTE_SETS) return timer;
    this.#setCount++;
    if (byKey === undefined) {
      byKey = new Map();
      this.#routed.set(route!, byKey);
    }
    byKey.set(key, timer);
    return timer;
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
      metrics.active++;
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

  /**
   * Records an async handler's response once it settles. A native promise is
   * watched and handed back as it is: the server waits on the app's own
   * promise, with no promise of ours in between (one microtask sooner, one
   * promise fewer). The watch is attached first, so the request is recorded
   * before the server sees the response. Any other thenable is awaited.
   */
  settle(
    pending: Promise<unknown>,
    req: Request,
    t0: number,
    route: string | undefined,
  ): Promise<unknown> {
    if (Object.getPrototypeOf(pending) !== Promise.prototype) {
      return this.#awaited(pending, req, t0, route);
    }
    // Neither reaction throws (done() and statusOf() catch), so the promise
    // then() returns never rejects: no unhandled rejection of ours.
    pending.then(
      (res) => this.done(req, statusOf(res), t0, route),
      () => this.done(req, 500, t0, route),
    );
    return pending;
  }

  async #awaited(
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
