/**
 * Removes the channel sockets that masters killed with SIGKILL left behind:
 * nothing else would, since a killed master runs no exit code.
 *
 * @module
 */
import { lstatSync, readdirSync, rmSync } from "node:fs";
import process from "node:process";
import { probeSocket } from "../runtime/channel_server.ts";

/** The names `channelPath()` gives. */
const CHANNEL_NAME = /^forklift-\d+\.sock$/;

/**
 * How old a socket file must be before a sweep may call it stale: a master
 * creates its file moments before it listens, and one just starting must not
 * lose it.
 */
export const STALE_AFTER_MS = 60_000;

/**
 * Removes the channel sockets that masters killed with SIGKILL left beside
 * `own` (the sweeping master's): files named as `channelPath()` names
 * them, sockets, owned by this user, at least {@linkcode STALE_AFTER_MS} old,
 * on which no listener accepts. A live master's socket always accepts,
 * whatever pid namespace it runs in, so only the dead are removed. Resolves to
 * the paths removed; never throws.
 *
 * @example
 * ```ts ignore
 * import { sweepStaleChannels } from "./channel_sweep.ts";
 * const removed = await sweepStaleChannels("/run/user/1000/forklift-42.sock");
 * ```
 */
export async function sweepStaleChannels(own: string): Promise<string[]> {
  const dir = own.slice(0, own.lastIndexOf("/")) || "/";
  const uid = typeof process.getuid === "function" ? process.getuid() : undefined;
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const path = `${dir}/${name}`;
    if (!CHANNEL_NAME.test(name) || path === own) continue;
    try {
      const stat = lstatSync(path);
      if (!stat.isSocket() || (uid !== undefined && stat.uid !== uid)) continue;
      if (Date.now() - stat.mtimeMs < STALE_AFTER_MS) continue;
      if (await probeSocket(path) !== "stale") continue;
      rmSync(path, { force: true });
      removed.push(path);
    } catch { /* gone meanwhile, or not ours to remove */ }
  }
  return removed;
}
