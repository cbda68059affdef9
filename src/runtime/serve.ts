/**
 * Hooks `Deno.serve`, `Bun.serve` and `node:http` / `node:https` servers so
 * every server a worker starts is timed, shares its port (`reusePort`) when
 * asked, reports its bound address, and can be drained on a graceful
 * shutdown. Both the call form and the `export default { fetch }` form go
 * through these globals: Deno's `DENO_AUTO_SERVE=1 deno run` calls
 * `Deno.serve({ handler, port, hostname, onListen })`, and Bun serves a
 * default export by calling `Bun.serve(exported)` after the preload ran.
 *
 * `node:http` is never loaded here: in Deno its first use costs 13–40 ms of
 * start-up. Its servers are found when they listen. Bun's call `Bun.serve`
 * with an `onNodeHTTPRequest` handler; Deno's read `reusePort` from the
 * listen options, which a getter on `Object.prototype` answers (and so
 * shares the port). Either way `node:http` is loaded by then, and its server
 * class's `emit` is wrapped once: `request` is timed, `listening` tracks the
 * server, `close` forgets it.
 *
 * A drain loses no request: the server first answers every request with
 * `Connection: close` (so a keep-alive client opens its next connection
 * elsewhere) while its listener stays open, and closes the listener at a
 * moment when none of its connections sits idle and nothing waits in its
 * accept queue (see `socket_census.ts`): at that moment the runtime's close,
 * which drops idle connections (Deno's `shutdown()` even those that have not
 * sent their request yet), drops none. Requests in flight finish, up to the
 * graceful timeout.
 *
 * The drain itself lives in `serve_drain.ts`. This file, with the rest of
 * `src/runtime/`, is the only place that touches `Deno.*` or `Bun.*`. It
 * imports nothing but the drain, its census and its timer, which load
 * nothing until a server drains, and in Deno never start its Node layer or
 * its timers (each costs a worker megabytes of private memory).
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

import { formatHostPort } from "../protocol/host_port.ts";
import { closeWhenDraining, type DrainState, handoff, newDrain } from "./serve_drain.ts";

/** A server started through a hooked `Deno.serve` / `Bun.serve`. */
export interface ServedServer {
  /** Bound address: `"0.0.0.0:8000"`, `"[::]:8000"` or `"unix:/path"`. */
  readonly addr: string;
  /**
   * Answers with `Connection: close` from now on, closes the listener once no
   * connection sits idle (or after a second: see `serve_drain.ts`), lets requests in
   * flight finish; resolves when they have.
   */
  drain(): Promise<void>;
  /** Closes at once, cutting requests still running. */
  abort(): void;
}

/** What the reporter gives the hook. */
export interface ServeHooks {
  /** Whether to force `reusePort: true` (several workers share one port). */
  reusePort(): boolean;
  /** Wraps a fetch-style handler so its requests are timed. */
  wrap<H extends (...args: any[]) => unknown>(handler: H, route?: string): H;
  /** Called once per server, as soon as it listens. */
  listening(server: ServedServer): void;
  /** Called when a server has closed (by the app or by a drain). */
  closed(server: ServedServer): void;
  /** A `node:http` server received a request: its timing starts. */
  request(req: object, res: object): void;
  /** The app ended a `node:http` response (`res.end()`): its timing stops. */
  responded(res: object): void;
}

const HOOKED = Symbol.for("forklift.serve.hooked");

const BUN_ROUTE_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];

function g(): any {
  return globalThis as any;
}

/** Copies `options` with `overrides`, keeping inherited properties readable. */
function derive(options: any, overrides: Record<string, unknown>): any {
  const out = Object.create(Object.getPrototypeOf(options ?? {}));
  Object.assign(out, options, overrides);
  return out;
}

/**
 * `serve` that rethrows what it throws as if the app's own call had thrown
 * it: the stack, and the source line a runtime prints above an `AddrInUse`,
 * start in the app, not in this (minified, when built) wrapper.
 */
function throwingFromCaller(serve: (...args: any[]) => any): (...args: any[]) => any {
  const capture = (Error as { captureStackTrace?: (e: object, fn: unknown) => void })
    .captureStackTrace;
  const outer = function (this: unknown): any {
    try {
      return serve.apply(this, arguments as unknown as any[]);
    } catch (e) {
      if (e instanceof Error && typeof capture === "function") {
        try {
          capture(e, outer);
        } catch {
          // A frozen error keeps the stack it has.
        }
      }
      throw e;
    }
  };
  return outer;
}

function hookDeno(deno: any, hooks: ServeHooks): void {
  const original = deno.serve;
  if (typeof original !== "function") return;
  const serve = function (this: unknown, a?: any, b?: any): any {
    let options: any;
    let handler: any;
    let inOptions = false;
    if (typeof a === "function") {
      handler = a;
      options = {};
    } else if (typeof b === "function") {
      options = a ?? {};
      handler = b;
    } else {
      options = a ?? {};
      handler = options.handler;
      inOptions = true;
    }
    if (typeof handler !== "function") return original.apply(this, arguments);
    const drain = newDrain();
    const wrapped = closeWhenDraining(hooks.wrap(handler), drain);
    const overrides: Record<string, unknown> = {};
    const share = hooks.reusePort() && options.path === undefined;
    if (share) overrides.reusePort = true;
    if (inOptions) overrides.handler = wrapped;
    const derived = derive(options, overrides);
    if (share) {
      // `deno serve --parallel` balances its isolates over one socket of its
      // own, which no other process may bind: give each isolate a reusePort
      // socket instead, and the kernel balances every isolate of every worker.
      for (const key of Object.getOwnPropertySymbols(derived)) {
        if (key.description === "kLoadBalanced") derived[key] = false;
      }
    }
    const server = original.call(deno, derived, ...(inOptions ? [] : [wrapped]));
    track(
      server,
      hooks,
      () => {
        const addr = server.addr;
        if (addr?.transport === "unix") return `unix:${addr.path}`;
        return formatHostPort(String(addr?.hostname), Number(addr?.port));
      },
      async () => {
        await handoff(drain, server.addr?.transport === "tcp" ? server.addr.port : undefined);
        await server.shutdown();
      },
      () => {
        // No abort in Deno's API: unref so the exit that follows is not held.
        try {
          server.unref?.();
        } catch { /* already closed */ }
      },
    );
    server.finished?.then?.(() => closedOnce(server, hooks), () => closedOnce(server, hooks));
    return server;
  };
  deno.serve = throwingFromCaller(serve);
}

/**
 * A static `Response` as a route's handler: Bun serves static routes
 * without calling any JS, so they would go untimed and could not say
 * `Connection: close` while draining. Each request gets its own copy.
 */
function staticHandler(response: Response): () => Response {
  return () => response.clone();
}

function wrapBunRoutes(routes: any, wrap: (h: any, route?: string) => any): any {
  if (routes === null || typeof routes !== "object") return routes;
  const out: Record<string, unknown> = {};
  for (const path of Object.keys(routes)) {
    const value = routes[path];
    if (typeof value === "function") {
      out[path] = wrap(value, path);
    } else if (value instanceof Response) {
      out[path] = wrap(staticHandler(value), path);
    } else if (
      value !== null && typeof value === "object" &&
      BUN_ROUTE_METHODS.some((m) => typeof value[m] === "function" || value[m] instanceof Response)
    ) {
      const methods: Record<string, unknown> = { ...value };
      for (const m of BUN_ROUTE_METHODS) {
        if (typeof value[m] === "function") methods[m] = wrap(value[m], path);
        else if (value[m] instanceof Response) methods[m] = wrap(staticHandler(value[m]), path);
      }
      out[path] = methods;
    } else {
      // HTML bundles and files are served by Bun itself: not timed.
      out[path] = value;
    }
  }
  return out;
}

function bunOverrides(
  options: any,
  hooks: ServeHooks,
  reuse: boolean,
  drain: DrainState,
): Record<string, unknown> {
  const wrap = (h: any, route?: string) => closeWhenDraining(hooks.wrap(h, route), drain);
  const overrides: Record<string, unknown> = {};
  if (typeof options?.fetch === "function") overrides.fetch = wrap(options.fetch);
  if (options?.routes !== undefined) overrides.routes = wrapBunRoutes(options.routes, wrap);
  if (reuse && options?.unix === undefined) overrides.reusePort = true;
  return overrides;
}

function hookBun(bun: any, hooks: ServeHooks): void {
  const original = bun.serve;
  if (typeof original !== "function") return;
  const serve = function (this: unknown, options?: any, ...rest: any[]): any {
    if (options === null || typeof options !== "object") {
      return original.call(bun, options, ...rest);
    }
    if (typeof options.onNodeHTTPRequest === "function") {
      // Bun's own node:http server: timed and tracked at the node level.
      hookNodeServers(hooks);
      const reuse = hooks.reusePort() && options.unix === undefined;
      return original.call(bun, reuse ? derive(options, { reusePort: true }) : options, ...rest);
    }
    const drain = newDrain();
    const server = original.call(
      bun,
      derive(options, bunOverrides(options, hooks, hooks.reusePort(), drain)),
      ...rest,
    );
    const reload = server.reload;
    if (typeof reload === "function") {
      server.reload = function (next: any) {
        return reload.call(server, derive(next, bunOverrides(next, hooks, false, drain)));
      };
    }
    const stop = server.stop;
    if (typeof stop === "function") {
      server.stop = function (force?: boolean) {
        const done = stop.call(server, force);
        Promise.resolve(done).then(
          () => closedOnce(server, hooks),
          () => closedOnce(server, hooks),
        );
        return done;
      };
    }
    track(
      server,
      hooks,
      () => {
        if (options.unix !== undefined) return `unix:${options.unix}`;
        const a = server.address;
        if (a && typeof a === "object" && typeof a.address === "string") {
          return formatHostPort(a.address, Number(a.port));
        }
        return formatHostPort(String(server.hostname), Number(server.port));
      },
      async () => {
        await handoff(drain, options.unix === undefined ? Number(server.port) : undefined);
        await stop.call(server, false);
      },
      () => {
        stop.call(server, true);
      },
    );
    return server;
  };
  bun.serve = throwingFromCaller(serve);
}

const NODE_HOOKED = Symbol.for("forklift.node.hooked");

/**
 * Wraps `emit` of the server class `node:http` servers share (Deno's
 * `net.Server`, Bun's `http.Server`), once per process. `node:http` is
 * loaded already whenever this runs.
 */
function hookNodeServers(hooks: ServeHooks): void {
  const global = g();
  if (global[NODE_HOOKED]) return;
  Object.defineProperty(global, NODE_HOOKED, { value: true });
  try {
    const load = global.process?.getBuiltinModule;
    if (typeof load !== "function") return;
    const http = load.call(global.process, "node:http");
    const net = load.call(global.process, "node:net");
    const proto = http.Server.prototype instanceof net.Server
      ? net.Server.prototype
      : http.Server.prototype;
    const emit = proto.emit;
    proto.emit = function (this: any, type: unknown, a: any, b: any): boolean {
      if (type === "request") {
        try {
          hooks.request(a, b);
        } catch { /* never in the request's way */ }
        const drain: DrainState | undefined = this[NODE_DRAIN];
        if (drain?.draining) closeNodeResponse(b, drain);
      } else if (type === "listening") {
        trackNode(this, hooks);
      } else if (type === "close") {
        closedOnce(this, hooks);
      }
      return emit.apply(this, arguments as any);
    };
    // The response's end, patched once on the class every server's responses
    // share: a listener per response ("close", "finish") costs Bun's
    // node:http several microseconds a request.
    const response = http.ServerResponse?.prototype;
    const end = response?.end;
    if (typeof end === "function") {
      response.end = function (this: object): unknown {
        try {
          return end.apply(this, arguments as any);
        } finally {
          try {
            hooks.responded(this);
          } catch { /* never in the response's way */ }
        }
      };
    }
  } catch {
    // An unexpected node layer: its servers go untimed, never broken.
  }
}

const NODE_DRAIN = Symbol("forklift.node.drain");

/** A `node:http` response begun while draining: counted until it ends, and says `Connection: close`. */
function closeNodeResponse(res: any, drain: DrainState): void {
  try {
    res.shouldKeepAlive = false;
    if (!res.headersSent) res.setHeader("connection", "close");
  } catch { /* an unexpected response object: it keeps its connection */ }
  drain.inflight++;
  let done = false;
  const end = () => {
    if (done) return;
    done = true;
    drain.inflight--;
  };
  try {
    res.once("finish", end);
    res.once("close", end);
  } catch {
    end();
  }
}

function trackNode(server: any, hooks: ServeHooks): void {
  if (server[SERVED] !== undefined) return;
  const drain = newDrain();
  server[NODE_DRAIN] = drain;
  track(
    server,
    hooks,
    () => {
      const a = server.address();
      if (typeof a === "string") return `unix:${a}`;
      return formatHostPort(String(a?.address), Number(a?.port));
    },
    async () => {
      let port: number | undefined;
      try {
        const a = server.address();
        if (a !== null && typeof a === "object") port = Number(a.port);
      } catch { /* not listening any more */ }
      await handoff(drain, port);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections with no request in flight would hold close() open.
        server.closeIdleConnections?.();
      });
    },
    () => {
      server.closeAllConnections?.();
      server.close?.();
    },
  );
}

/**
 * Deno's `node:net` reads `reusePort` from its listen options, a plain
 * object: a getter on `Object.prototype` finds every `node:http` server as
 * it binds and shares its port under forklift. An own `reusePort` (set by
 * the app, or by a `Deno.serve` hook) is never reached; assigning one makes
 * it own.
 */
function trapNodeListen(hooks: ServeHooks): void {
  Object.defineProperty(Object.prototype, "reusePort", {
    configurable: true,
    enumerable: false,
    get(this: unknown): true | undefined {
      if (!g()[NODE_HOOKED] && /deno_node|node:/.test(new Error().stack ?? "")) {
        hookNodeServers(hooks);
      }
      return hooks.reusePort() ? true : undefined;
    },
    set(this: object, value: unknown) {
      Object.defineProperty(this, "reusePort", {
        value,
        writable: true,
        enumerable: true,
        configurable: true,
      });
    },
  });
}

const SERVED = Symbol("forklift.served");

function track(
  server: any,
  hooks: ServeHooks,
  addr: () => string,
  drain: () => Promise<void>,
  abort: () => void,
): void {
  let address = "";
  try {
    address = addr();
  } catch {
    address = "unknown";
  }
  const served: ServedServer = {
    addr: address,
    drain: async () => {
      await drain();
      closedOnce(server, hooks);
    },
    abort,
  };
  server[SERVED] = served;
  hooks.listening(served);
}

function closedOnce(server: any, hooks: ServeHooks): void {
  const served: ServedServer | undefined = server?.[SERVED];
  if (served === undefined) return;
  server[SERVED] = undefined;
  hooks.closed(served);
}

/**
 * Replaces `Deno.serve` / `Bun.serve` with timed versions, and finds
 * `node:http` servers as they listen. Runs at most once
 * per process, however many copies of this module are loaded; returns whether
 * this call installed the hook.
 *
 * @example Hook the runtime's server
 * ```ts ignore
 * import { hookServe } from "./serve.ts";
 * hookServe({
 *   reusePort: () => false,
 *   wrap: (handler) => handler,
 *   listening: (server) => console.log("listening on", server.addr),
 *   closed: () => {},
 *   request: () => {},
 * });
 * ```
 */
export function hookServe(hooks: ServeHooks): boolean {
  const global = g();
  if (global[HOOKED]) return false;
  if (global.Deno !== undefined) {
    hookDeno(global.Deno, hooks);
    trapNodeListen(hooks);
  } else if (global.Bun !== undefined) hookBun(global.Bun, hooks);
  else return false;
  Object.defineProperty(global, HOOKED, { value: true });
  return true;
}
