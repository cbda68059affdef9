/**
 * Who listens on a TCP port, from Linux's `/proc`: the listening sockets of a
 * port (`/proc/net/tcp`, `/proc/net/tcp6`) and the sockets a process holds
 * (`/proc/PID/fd`). Workers bind with `SO_REUSEPORT`, so a second program
 * already serving their port would silently take a share of their traffic;
 * the master compares the two to find it.
 *
 * @module
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** A listening socket: its inode and the user that owns it. */
export interface Listener {
  inode: string;
  uid: number;
}

/** The TCP state of a listening socket in `/proc/net/tcp`. */
const LISTEN = "0A";

/**
 * The sockets listening on `port`, IPv4 and IPv6, from the text of
 * `/proc/net/tcp` and `/proc/net/tcp6`.
 *
 * @example
 * ```ts
 * import { parseListeners } from "./port_owners.ts";
 * const line = "  0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1";
 * console.assert(parseListeners([line], 8080)[0].inode === "4242");
 * ```
 */
export function parseListeners(lines: Iterable<string>, port: number): Listener[] {
  const out: Listener[] = [];
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== LISTEN) continue;
    const local = f[1];
    if (parseInt(local.slice(local.lastIndexOf(":") + 1), 16) !== port) continue;
    out.push({ inode: f[9], uid: Number(f[7]) });
  }
  return out;
}

function lines(path: string): string[] {
  try {
    return readFileSync(path, "utf8").split("\n").slice(1);
  } catch {
    return [];
  }
}

/** The inodes of the sockets `pid` holds open (empty when it cannot be read). */
export function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]);
    } catch {
      // Closed meanwhile.
    }
  }
  return out;
}

/** `pids` and every process in the process groups they lead (a worker's own children). */
export function withGroups(pids: readonly number[]): number[] {
  const leaders = new Set(pids);
  const out = new Set(pids);
  let entries: string[] = [];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [...out];
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // Fields after the command: state, ppid, pgrp.
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (leaders.has(pgrp)) out.add(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return [...out];
}

/**
 * The sockets listening on `port` that none of `pids` (nor the processes of
 * the groups they lead) holds: another program's. Empty where `/proc` has no
 * TCP tables (not Linux).
 *
 * @example
 * ```ts ignore
 * import { foreignListeners } from "./port_owners.ts";
 * const others = foreignListeners(8000, [workerPid1, workerPid2]);
 * ```
 */
export function foreignListeners(port: number, pids: readonly number[]): Listener[] {
  const listening = parseListeners(
    [...lines("/proc/net/tcp"), ...lines("/proc/net/tcp6")],
    port,
  );
  if (listening.length === 0) return [];
  const ours = new Set<string>();
  for (const pid of withGroups(pids)) for (const inode of socketInodes(pid)) ours.add(inode);
  return listening.filter((l) => !ours.has(l.inode));
}
