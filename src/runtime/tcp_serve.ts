/**
 * Listening for the master's own endpoint: host names resolved first, and a
 * failure to listen told in words (`address already in use`), on the
 * runtime's own sockets (see `tcp_listen.ts`).
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

import { listenTcp, type TcpHandlers } from "./tcp_listen.ts";

/** A listening server. */
export interface TcpServer {
  /** The bound address (the real port when 0 was asked for). */
  address: { host: string; port: number };
  /** Stops listening; connections are their owner's to close. */
  close(): void;
}

/** Options of {@linkcode serveTcp}. */
export interface ServeTcpOptions extends TcpHandlers {
  host: string;
  port: number;
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
 * Tries `host:port` and lets it go at once: resolves when a listen there
 * would succeed now, rejects with a {@linkcode ListenError} otherwise.
 *
 * @example
 * ```ts ignore
 * import { probeListen } from "./tcp_serve.ts";
 * await probeListen("127.0.0.1", 9464); // throws "address already in use" when taken
 * ```
 */
export async function probeListen(host: string, port: number): Promise<void> {
  const server = await serveTcp({
    host,
    port,
    open: (conn) => {
      conn.close();
      return { data: () => {}, closed: () => {} };
    },
  });
  server.close();
}

/**
 * Listens on `host:port` and hands each connection to `open`. Rejects with a
 * {@linkcode ListenError} whose message is the reason alone.
 *
 * @example Listen on an ephemeral port
 * ```ts ignore
 * import { serveTcp } from "./tcp_serve.ts";
 * const server = await serveTcp({
 *   host: "127.0.0.1",
 *   port: 0,
 *   open: (conn) => ({ data: () => conn.close(), closed: () => {} }),
 * });
 * console.log(server.address.port);
 * server.close();
 * ```
 */
export async function serveTcp(options: ServeTcpOptions): Promise<TcpServer> {
  let host = options.host;
  if (isName(host)) {
    const { lookup } = await import("node:dns/promises");
    try {
      host = (await lookup(host)).address;
    } catch (e) {
      throw listenError({ code: "ENOTFOUND", cause: e });
    }
  }
  try {
    const listener = listenTcp(host, options.port, options);
    return { address: { host, port: listener.port }, close: () => listener.close() };
  } catch (e) {
    throw listenError(e);
  }
}
