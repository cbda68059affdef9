/**
 * Where the master's socket for Deno workers' channels lives.
 *
 * @module
 */

import { tmpdir } from "node:os";

/**
 * What every channel directory's name starts with; a random suffix follows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CHANNEL_DIR_PREFIX } from "./channel_path.ts";
 * assert.ok(CHANNEL_DIR_PREFIX === "forklift-channel-");
 * ```
 */
export const CHANNEL_DIR_PREFIX = "forklift-channel-";
/**
 * The socket's name inside its directory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CHANNEL_FILE } from "./channel_path.ts";
 * assert.ok(CHANNEL_FILE === "channel.sock");
 * ```
 */
export const CHANNEL_FILE = "channel.sock";

/**
 * Returns a socket path for a new master: `channel.sock` in a directory of
 * its own, `forklift-channel-` and 64 random bits, in `$XDG_RUNTIME_DIR`
 * (private to the user) when set, else the temporary directory. A pid would
 * not do: every container's master is pid 1, and containers may share `/tmp`.
 * `listenChannel()` makes the directory (mode 0700, failing if the name is
 * taken) and removes it again; only the master's user can enter it, and a
 * connection must present a worker's token besides.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { channelPath } from "./channel_path.ts";
 * assert.ok(channelPath({ XDG_RUNTIME_DIR: "/run/user/1000" }).startsWith("/run/user/1000/forklift-channel-"));
 * ```
 */
export function channelPath(env: Record<string, string | undefined>): string {
  const base = env.XDG_RUNTIME_DIR || tmpdir();
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  const name = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${base.replace(/\/+$/, "")}/${CHANNEL_DIR_PREFIX}${name}/${CHANNEL_FILE}`;
}
