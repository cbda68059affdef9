/**
 * The drain of one served server: from the moment it starts, requests are
 * counted while they run and answered with `Connection: close`, and the
 * listener is let go at a moment when none of its connections sits idle and
 * nothing waits in its accept queue (see `socket_census.ts`), so that closing
 * it drops no request. `serve.ts` hooks each runtime's server onto it.
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

import { afterDelay } from "./timers.ts";
import { openCensus } from "./socket_census.ts";

/**
 * Longest a draining server keeps its listener open waiting for a moment
 * with no idle connection: past it, idle connections (a browser's, say)
 * are closed anyway, between requests.
 */
const HANDOFF_MS = 1_000;
/** How often the census is taken while waiting. */
const CENSUS_EVERY_MS = 5;
/** Where there is no census (not Linux, no FFI): how long `Connection: close` runs first. */
const BLIND_HANDOFF_MS = 250;

/** One server's drain: whether it runs, and the requests begun since. */
export interface DrainState {
  draining: boolean;
  inflight: number;
}

export function newDrain(): DrainState {
  return { draining: false, inflight: 0 };
}

/** `res` with `Connection: close`, so that the client sends nothing more on its connection. */
export function markClose(res: unknown): unknown {
  if (!(res instanceof Response) || res.status === 101) return res;
  try {
    res.headers.set("connection", "close");
    return res;
  } catch {
    // Immutable headers (`Response.redirect()`, a `fetch()` answer): a copy takes it.
    try {
      const headers = new Headers(res.headers);
      headers.set("connection", "close");
      return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
    } catch {
      return res;
    }
  }
}

/**
 * Wraps a fetch-style handler so that, once its server drains, requests are
 * counted while they run and answered with `Connection: close`. Until then it
 * costs one check.
 */
export function closeWhenDraining<H extends (...args: any[]) => unknown>(
  handler: H,
  drain: DrainState,
): H {
  // Two declared parameters, as the timing wrapper has: Deno builds no Request
  // for a handler that declares none, and (req, info) / (req, server) need no
  // rest array per request.
  return function (this: unknown, req: unknown, extra: unknown): unknown {
    if (!drain.draining) {
      return arguments.length <= 2
        ? handler.call(this, req, extra)
        : handler.apply(this, arguments as any);
    }
    drain.inflight++;
    let res: any;
    try {
      res = arguments.length <= 2
        ? handler.call(this, req, extra)
        : handler.apply(this, arguments as any);
    } catch (e) {
      drain.inflight--;
      throw e;
    }
    if (res !== null && typeof res === "object" && typeof res.then === "function") {
      return res.then((r: unknown) => {
        drain.inflight--;
        return markClose(r);
      }, (e: unknown) => {
        drain.inflight--;
        throw e;
      });
    }
    drain.inflight--;
    return markClose(res);
  } as H;
}

/**
 * Starts a drain and resolves at the moment the listener may close: no
 * connection accepted on `port` sits without a request in flight, and none
 * waits in the accept queue; or after {@linkcode HANDOFF_MS}. The caller
 * closes the listener in the same turn of the event loop, before any other
 * connection can be accepted.
 */
export async function handoff(drain: DrainState, port: number | undefined): Promise<void> {
  drain.draining = true;
  if (port === undefined || !(port > 0)) return;
  const census = await openCensus();
  if (census === undefined) {
    await new Promise<void>((r) => afterDelay(r, BLIND_HANDOFF_MS));
    return;
  }
  try {
    const end = Date.now() + HANDOFF_MS;
    for (;;) {
      const now = census.take(port);
      if (now.backlog === 0 && now.established <= drain.inflight) return;
      if (Date.now() >= end) return;
      await new Promise<void>((r) => afterDelay(r, CENSUS_EVERY_MS));
    }
  } finally {
    census.close();
  }
}
