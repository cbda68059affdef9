/**
 * Where the master's socket for Deno workers' channels lives.
 *
 * @module
 */

import { tmpdir } from "node:os";

/**
 * Returns the socket path for the master with pid `pid`: in
 * `$XDG_RUNTIME_DIR` (private to the user) when set, else the temporary
 * directory. Only the master's user can connect (the file is not writable by
 * others), and a connection must present a worker's token besides.
 *
 * @example
 * ```ts
 * import { channelPath } from "./channel_path.ts";
 * console.assert(channelPath({ XDG_RUNTIME_DIR: "/run/user/1000" }, 42) === "/run/user/1000/forklift-42.sock");
 * ```
 */
export function channelPath(env: Record<string, string | undefined>, pid: number): string {
  const base = env.XDG_RUNTIME_DIR || tmpdir();
  return `${base.replace(/\/+$/, "")}/forklift-${pid}.sock`;
}
