/**
 * Removes the channel sockets that masters killed with SIGKILL left behind:
 * nothing else would, since a killed master runs no exit code.
 *
 * @module
 */
import { lstatSync, readdirSync, rmdirSync, type Stats, unlinkSync } from "node:fs";
import process from "node:process";
import { probeSocket } from "../runtime/channel_server.ts";
import { CHANNEL_DIR_PREFIX, CHANNEL_FILE } from "./channel_path.ts";

/** The directories `channelPath()` names. */
const CHANNEL_DIR = new RegExp(`^${CHANNEL_DIR_PREFIX}[0-9a-f]{16}$`);
/** The sockets earlier versions named after the master's pid, straight in the base directory. */
const PID_SOCKET = /^forklift-\d+\.sock$/;

/**
 * How old a socket file must be before a sweep may call it stale: a master
 * creates its file moments before it listens, and one just starting must not
 * lose it.
 */
export const STALE_AFTER_MS = 60_000;

function ours(stat: Stats, uid: number | undefined): boolean {
  return uid === undefined || stat.uid === uid;
}

function same(a: Stats, b: Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/**
 * Removes the socket at `path` if it is one of this user's, old enough, and
 * refused by the kernel (its listener is gone); true when removed.
 */
async function removeStaleSocket(path: string, uid: number | undefined): Promise<boolean> {
  const stat = lstatSync(path);
  if (!stat.isSocket() || !ours(stat, uid)) return false;
  if (Date.now() - stat.mtimeMs < STALE_AFTER_MS) return false;
  if (await probeSocket(path) !== "stale") return false;
  // The file probed must be the file removed.
  if (!same(lstatSync(path), stat)) return false;
  unlinkSync(path);
  return true;
}

/**
 * Removes the channel sockets that masters killed with SIGKILL left beside
 * `own` (the sweeping master's socket): in directories named as
 * `channelPath()` names them (with the directory), or named after a pid as
 * earlier versions did; sockets owned by this user, at least
 * {@linkcode STALE_AFTER_MS} old, on which no listener accepts. A live
 * master's socket always accepts, whatever pid namespace it runs in, so only
 * the dead are removed; a directory holding anything else is left alone.
 * Resolves to the paths removed; never throws.
 *
 * @example
 * ```ts ignore
 * import { sweepStaleChannels } from "./channel_sweep.ts";
 * const removed = await sweepStaleChannels("/run/user/1000/forklift-channel-0123456789abcdef/channel.sock");
 * ```
 */
export async function sweepStaleChannels(own: string): Promise<string[]> {
  const ownDir = own.slice(0, own.lastIndexOf("/")) || "/";
  const base = ownDir.slice(0, ownDir.lastIndexOf("/")) || "/";
  const uid = typeof process.getuid === "function" ? process.getuid() : undefined;
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return removed;
  }
  for (const name of names) {
    const path = `${base}/${name}`;
    try {
      if (PID_SOCKET.test(name)) {
        if (await removeStaleSocket(path, uid)) removed.push(path);
        continue;
      }
      if (!CHANNEL_DIR.test(name) || path === ownDir) continue;
      const dir = lstatSync(path);
      if (!dir.isDirectory() || !ours(dir, uid)) continue;
      const inside = readdirSync(path);
      if (inside.length === 1 && inside[0] === CHANNEL_FILE) {
        if (!await removeStaleSocket(`${path}/${CHANNEL_FILE}`, uid)) continue;
      } else if (inside.length !== 0 || Date.now() - dir.mtimeMs < STALE_AFTER_MS) {
        // Empty and old: its master died between making it and listening.
        continue;
      }
      if (!same(lstatSync(path), dir)) continue;
      rmdirSync(path);
      removed.push(path);
    } catch { /* gone meanwhile, or not ours to remove */ }
  }
  return removed;
}
