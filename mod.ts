/**
 * forklift's in-process reporter: metric instruments, post-fork callbacks and
 * request timing for Deno and Bun servers.
 *
 * Under `forklift run` every worker already has this reporter (injected with
 * `--preload`): `Deno.serve` / `Bun.serve` servers are timed, and their metrics
 * reach the master over the worker's IPC channel. Import this module to add
 * your own instruments, name routes, or run background work only after the
 * worker's handshake. Without forklift the same code runs standalone and only
 * counts.
 *
 * Importing it arms no timer and starts no work: recording is a few map
 * lookups and number bumps, and never throws.
 *
 * @example Count, time and name routes
 * ```ts ignore
 * import { counter, histogram, postFork, setRoute } from "./mod.ts";
 *
 * const hits = counter("app.cache.hits", { description: "Cache hits" });
 * const took = histogram("app.render.duration", { unit: "s", boundaries: [0.01, 0.1, 1] });
 * postFork(() => {
 *   // Connect pools, start background loops: runs once per worker, after the handshake.
 * });
 *
 * Deno.serve((req) => {
 *   const t0 = performance.now();
 *   if (new URL(req.url).pathname.startsWith("/users/")) setRoute(req, "/users/:id");
 *   hits.add(1, { cache: "users" });
 *   took.record((performance.now() - t0) / 1000);
 *   return new Response("ok");
 * });
 * ```
 *
 * @module
 */

import { getReporter, type HandshakeState, type ReporterStats } from "./src/reporter/reporter.ts";
import type { Attributes, AttributeValue } from "./src/protocol/messages.ts";
import type {
  Counter,
  Gauge,
  Histogram,
  HistogramOptions,
  InstrumentOptions,
  RecordAttributes,
  UpDownCounter,
} from "./src/reporter/instruments.ts";
import type { FetchHandler } from "./src/reporter/http.ts";

export type {
  Attributes,
  AttributeValue,
  Counter,
  FetchHandler,
  Gauge,
  HandshakeState,
  Histogram,
  HistogramOptions,
  InstrumentOptions,
  RecordAttributes,
  ReporterStats,
  UpDownCounter,
};
export { HTTP_DURATION_BOUNDARIES } from "./src/reporter/instruments.ts";

getReporter().start();

/**
 * Creates a counter, a sum that only goes up. Calling it again with the same
 * name returns an instrument on the same series.
 *
 * @example Count cache hits
 * ```ts
 * import { counter } from "./mod.ts";
 * const hits = counter("app.cache.hits");
 * hits.add(1, { cache: "users" });
 * ```
 */
export function counter(name: string, options?: InstrumentOptions): Counter {
  return getReporter().counter(name, options);
}

/**
 * Creates an up-down counter, a sum that may go down.
 *
 * @example Track open connections
 * ```ts
 * import { upDownCounter } from "./mod.ts";
 * const open = upDownCounter("app.connections.open");
 * open.add(1);
 * open.add(-1);
 * ```
 */
export function upDownCounter(name: string, options?: InstrumentOptions): UpDownCounter {
  return getReporter().upDownCounter(name, options);
}

/**
 * Creates a gauge: each harvest carries the last value recorded.
 *
 * @example Record the queue length
 * ```ts
 * import { gauge } from "./mod.ts";
 * gauge("app.queue.length").record(7, { queue: "mail" });
 * ```
 */
export function gauge(name: string, options?: InstrumentOptions): Gauge {
  return getReporter().gauge(name, options);
}

/**
 * Creates a histogram with explicit bucket boundaries (upper bounds,
 * inclusive, strictly ascending). Without `boundaries` it takes the
 * semantic conventions' duration buckets (0.005 s … 10 s) when its unit is
 * `s`, else the OpenTelemetry API's default (0 … 10000).
 *
 * @example Time a job in seconds
 * ```ts
 * import { histogram } from "./mod.ts";
 * const took = histogram("app.job.duration", { unit: "s", boundaries: [0.1, 1, 10] });
 * took.record(0.25, { job: "resize" });
 * ```
 */
export function histogram(name: string, options?: HistogramOptions): Histogram {
  return getReporter().histogram(name, options);
}

/**
 * Runs `fn` once in this worker after its handshake with the forklift master
 * (at once, on the next tick, when there is no master): the place for timers,
 * pools and background loops that must not start at import.
 *
 * @example Start a background loop after the handshake
 * ```ts
 * import { postFork } from "./mod.ts";
 * postFork(() => {
 *   const t = setInterval(() => {}, 60_000);
 *   clearInterval(t);
 * });
 * ```
 */
export function postFork(fn: () => void | Promise<void>): void {
  getReporter().afterWelcome(fn as () => void);
}

/** Options of {@linkcode instrument}. */
export interface InstrumentHandlerOptions {
  /** Route template recorded as `http.route`, e.g. `"/users/:id"`. */
  route?: string;
}

/**
 * Wraps a fetch-style handler so its requests are timed like those of an
 * auto-instrumented `Deno.serve` / `Bun.serve`: `http.server.request.duration`
 * by method, status and (when given) route. A handler that throws counts as
 * status 500 and the error is re-thrown. Inside a server forklift already
 * times, it only names the route, so no request is counted twice.
 *
 * @example Time a handler passed to another server
 * ```ts
 * import assert from "node:assert/strict";
 * import { instrument } from "./mod.ts";
 * const handler = instrument((_req: Request) => new Response("ok"), { route: "/health" });
 * const res = await handler(new Request("http://localhost/health"));
 * assert.ok(res.status === 200);
 * ```
 */
export function instrument<H extends FetchHandler>(
  handler: H,
  options?: InstrumentHandlerOptions,
): H {
  return getReporter().instrument(handler, options?.route);
}

/**
 * Names the route of a request, recorded as `http.route` on its duration:
 * a fetch `Request`, or a `node:http` request (`req` in Express, `req.raw` in
 * Fastify, `ctx.req` in Koa). Express routes are named without it. Without
 * either, no route is recorded (never the raw path).
 *
 * @example Name a parameterised route
 * ```ts
 * import { setRoute } from "./mod.ts";
 * const req = new Request("http://localhost/users/42");
 * setRoute(req, "/users/:id");
 * ```
 */
export function setRoute(req: Request | object, route: string): void {
  getReporter().setRoute(req, route);
}

/**
 * Hands what was recorded to the master now (and waits for its ack) instead
 * of at the next harvest. Resolves false when there is nowhere to send it.
 *
 * @example Flush before a long pause
 * ```ts
 * import { flush } from "./mod.ts";
 * await flush();
 * ```
 */
export function flush(): Promise<boolean> {
  return getReporter().flush();
}

/**
 * Returns the reporter's debug counters: handshake state, worker id, timers
 * armed, last harvest sequence, requests counted.
 *
 * @example Check that importing armed no timer
 * ```ts
 * import { reporterStats } from "./mod.ts";
 * console.log(reporterStats().timersArmed);
 * ```
 */
export function reporterStats(): ReporterStats {
  return getReporter().stats();
}
