/**
 * A small HTTP server on the runtime's own `Deno.serve` / `Bun.serve`: they
 * start in well under a millisecond and cost far less memory than
 * `node:http`, which matters for a master that must stay lean.
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

/** A running server. */
export interface HttpServer {
  /** The bound address (the real port when 0 was asked for). */
  address: { host: string; port: number };
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

/** Options of {@linkcode serveHttp}. */
export interface ServeHttpOptions {
  host: string;
  port: number;
  handler: (request: Request) => Response | Promise<Response>;
}

/** Why a listen failed, in words: `address already in use`, `permission denied`, … */
export class ListenError extends Error {
  /** The system error code, e.g. `EADDRINUSE`. */
  readonly code: string;

  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ListenError";
    this.code = code;
  }
}

const REASONS: Record<string, string> = {
  EADDRINUSE: "address already in use",
  EACCES: "permission denied",
  EPERM: "permission denied",
  EADDRNOTAVAIL: "address not available on this machine",
  ENOTFOUND: "unknown host",
};

function listenError(e: any): ListenError {
  const name = String(e?.name ?? "");
  const code: string = e?.code ??
    (name === "AddrInUse"
      ? "EADDRINUSE"
      : name === "AddrNotAvailable"
      ? "EADDRNOTAVAIL"
      : name === "PermissionDenied"
      ? "EACCES"
      : /lookup address|Name or service/i.test(String(e?.message))
      ? "ENOTFOUND"
      : "EUNKNOWN");
  const reason = REASONS[code] ?? String(e?.message ?? e).split("\n")[0];
  return new ListenError(reason, code, { cause: e });
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/**
 * Whether `host` needs a name lookup before listening (Bun reports an
 * unknown host as "address in use", so names are resolved first).
 */
function isName(host: string): boolean {
  return !IPV4.test(host) && !host.includes(":") && host !== "localhost";
}

/**
 * Listens on `host:port` and answers with `handler`. Rejects with a
 * {@linkcode ListenError} whose message is the reason alone.
 *
 * @example Serve a health check on an ephemeral port
 * ```ts ignore
 * import { serveHttp } from "./http_serve.ts";
 * const server = await serveHttp({ host: "127.0.0.1", port: 0, handler: () => new Response("ok") });
 * console.log(server.address.port);
 * await server.close();
 * ```
 */
/** How long a server that stopped on an accept error waits before listening again. */
const RESTART_MS = 1_000;

export async function serveHttp(options: ServeHttpOptions): Promise<HttpServer> {
  let host = options.host;
  if (isName(host)) {
    const { lookup } = await import("node:dns/promises");
    try {
      host = (await lookup(host)).address;
    } catch (e) {
      throw listenError({ code: "ENOTFOUND", cause: e });
    }
  }
  const g = globalThis as any;
  try {
    if (g.Bun) {
      // A client that sends half a request is let go after 10 s.
      const server = g.Bun.serve({
        hostname: host,
        port: options.port,
        fetch: options.handler,
        idleTimeout: 10,
      });
      return {
        address: { host, port: server.port },
        close: async () => void await server.stop(true),
      };
    }
    const start = (port: number) =>
      g.Deno.serve({ hostname: host, port, onListen: () => {} }, options.handler);
    let server = start(options.port);
    const port: number = server.addr.port;
    let closing = false;
    // Deno's server ends for good on an accept error (EMFILE when the process
    // runs out of descriptors), rejecting `finished`: listen again once
    // descriptors are back, on the same port, for as long as it is not closed.
    const watch = (s: any) =>
      s.finished.catch(async () => {
        while (!closing) {
          await new Promise((r) => setTimeout(r, RESTART_MS));
          if (closing) return;
          try {
            server = start(port);
            watch(server);
            return;
          } catch {
            // Still out of descriptors, or the port taken: try again.
          }
        }
      });
    watch(server);
    return {
      address: { host, port },
      close: async () => {
        closing = true;
        await server.shutdown().catch(() => {});
      },
    };
  } catch (e) {
    throw listenError(e);
  }
}
