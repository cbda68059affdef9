/**
 * Host and port, read and written one way everywhere: an IPv6 host goes in
 * brackets (`[::1]:9464`), so that the text is a valid URL authority and
 * cannot be misread at its last colon.
 *
 * @module
 */

/**
 * `host` as it stands before a `:port` or in a URL: in brackets when it is an
 * IPv6 address, as it is otherwise (and as it is when bracketed already).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bracketHost } from "./host_port.ts";
 * assert.equal(bracketHost("::1"), "[::1]");
 * assert.equal(bracketHost("127.0.0.1"), "127.0.0.1");
 * ```
 */
export function bracketHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/**
 * `host:port`, the IPv6 host in brackets.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatHostPort } from "./host_port.ts";
 * assert.equal(formatHostPort("::", 8000), "[::]:8000");
 * assert.equal(formatHostPort("0.0.0.0", 8000), "0.0.0.0:8000");
 * ```
 */
export function formatHostPort(host: string, port: number): string {
  return `${bracketHost(host)}:${port}`;
}

/**
 * Reads `HOST:PORT` (an IPv6 host in brackets); `undefined` when the text is
 * not that, or the port is past 65535. The host comes back without brackets.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseHostPort } from "./host_port.ts";
 * assert.deepEqual(parseHostPort("[::1]:9464"), { host: "::1", port: 9464 });
 * assert.equal(parseHostPort("nowhere"), undefined);
 * ```
 */
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]*)\]|([^:\[\]]*)):([0-9]{1,5})$/.exec(text);
  if (match === null) return undefined;
  const host = match[1] ?? match[2];
  const port = Number(match[3]);
  return host === "" || port > 65535 ? undefined : { host, port };
}

/**
 * The host to connect to for a server bound to `host`: a wildcard address
 * (`0.0.0.0`, `::`) listens on loopback too, which is the one a local client
 * can be sure to reach.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dialHost } from "./host_port.ts";
 * assert.equal(dialHost("0.0.0.0"), "127.0.0.1");
 * assert.equal(dialHost("::"), "::1");
 * assert.equal(dialHost("10.0.0.5"), "10.0.0.5");
 * ```
 */
export function dialHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::" || host === "[::]" || host === "::0") return "::1";
  return host;
}

/**
 * The `http://` URL of `path` on a server bound to `host:port`, for a client
 * on this machine (see {@linkcode dialHost}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { localHttpUrl } from "./host_port.ts";
 * assert.equal(localHttpUrl("::", 9464, "/status"), "http://[::1]:9464/status");
 * ```
 */
export function localHttpUrl(host: string, port: number, path: string): string {
  return `http://${formatHostPort(dialHost(host), port)}${path}`;
}
