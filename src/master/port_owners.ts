/**
 * Who listens on a TCP port, from Linux's `/proc`: the listening sockets of a
 * port (`/proc/net/tcp`, `/proc/net/tcp6`) and the sockets a process holds
 * (`/proc/PID/fd`). Workers bind with `SO_REUSEPORT`, so a second program
 * already serving their port would silently take a share of their traffic;
 * the master compares the two to find it, as the kernel routes connections.
 *
 * @module
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { endianness } from "node:os";
import process from "node:process";

/** A listening socket: its inode, the user that owns it and the address it is bound to. */
export interface Listener {
  inode: string;
  uid: number;
  /** The address family the socket takes connections in (a v4-mapped IPv6 address counts as 4). */
  family: 4 | 6;
  /** The bound address, as text (`127.0.0.1`, `::1`); `0.0.0.0` or `::` for any. */
  address: string;
}

/** The TCP state of a listening socket in `/proc/net/tcp`. */
const LISTEN = "0A";

/** Whether `/proc` prints each 32-bit word of an address in little-endian order (this host's). */
const LITTLE = endianness() === "LE";

/** The bytes of an address as `/proc/net/tcp{,6}` prints it: 32-bit words in host order. */
function addressBytes(hex: string): number[] | undefined {
  if (!/^(?:[0-9A-Fa-f]{8}){1,4}$/.test(hex) || (hex.length !== 8 && hex.length !== 32)) {
    return undefined;
  }
  const out: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = [0, 2, 4, 6].map((i) => parseInt(hex.slice(w + i, w + i + 2), 16));
    out.push(...(LITTLE ? word.reverse() : word));
  }
  return out;
}

/** The family and text of an address's bytes; a v4-mapped IPv6 address becomes its IPv4 one. */
function addressText(bytes: number[]): { family: 4 | 6; address: string } {
  const mapped = bytes.length === 16 && bytes.slice(0, 10).every((b) => b === 0) &&
    bytes[10] === 0xff && bytes[11] === 0xff;
  if (bytes.length === 4 || mapped) return { family: 4, address: bytes.slice(-4).join(".") };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  // The longest run of zero groups becomes "::", as inet_ntop writes it.
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return { family: 6, address: groups.join(":") };
  const head = groups.slice(0, best).join(":");
  const tail = groups.slice(best + bestLen).join(":");
  return { family: 6, address: `${head}::${tail}` };
}

const ANY = new Set(["0.0.0.0", "::"]);

/**
 * The sockets listening on `port`, IPv4 and IPv6, from the text of
 * `/proc/net/tcp` and `/proc/net/tcp6`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseListeners } from "./port_owners.ts";
 * const line = "  0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1";
 * const [l] = parseListeners([line], 8080);
 * assert.ok(l.inode === "4242" && l.address === "0.0.0.0" && l.uid === 1000);
 * ```
 */
export function parseListeners(lines: Iterable<string>, port: number): Listener[] {
  const out: Listener[] = [];
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== LISTEN) continue;
    const local = f[1];
    const colon = local.lastIndexOf(":");
    if (parseInt(local.slice(colon + 1), 16) !== port) continue;
    const bytes = addressBytes(local.slice(0, colon));
    const uid = Number(f[7]);
    if (bytes === undefined || !Number.isSafeInteger(uid)) continue;
    out.push({ inode: f[9], uid, ...addressText(bytes) });
  }
  return out;
}

/**
 * Whether the kernel would hand `other` connections meant for `ours` (both
 * listening on one port): the two are one user's (the kernel refuses, with
 * `EADDRINUSE`, to let two users' sockets overlap, so another user's listener
 * that coexists with the workers' is on an address they do not serve), and
 * `other` is in the workers' `SO_REUSEPORT` group (same family and address) or
 * more specific than them (an address inside their wildcard, or IPv4's
 * wildcard inside a dual-stack `[::]`), which the kernel prefers. A wildcard
 * listener never takes a specific address's connections, and `[::]` never
 * takes IPv4's from `0.0.0.0`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sharesTraffic } from "./port_owners.ts";
 * const ours = { inode: "1", uid: 0, family: 4, address: "0.0.0.0" } as const;
 * assert.ok(sharesTraffic({ inode: "2", uid: 0, family: 4, address: "127.0.0.2" }, ours));
 * assert.ok(!sharesTraffic({ inode: "3", uid: 0, family: 6, address: "::1" }, ours));
 * assert.ok(!sharesTraffic({ inode: "4", uid: 65534, family: 4, address: "0.0.0.0" }, ours));
 * ```
 */
export function sharesTraffic(other: Listener, ours: Listener): boolean {
  if (other.uid !== ours.uid) return false;
  if (!ANY.has(ours.address)) {
    return other.family === ours.family && other.address === ours.address;
  }
  // `ours` is a wildcard: whatever `other` is bound to in its family is as
  // specific or more. A `[::]` is taken as dual-stack (v6only is not in /proc).
  return other.family === ours.family || (ours.family === 6 && other.family === 4);
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
 * the groups they lead) holds and that would take connections meant for
 * theirs ({@linkcode sharesTraffic}): another program serving the workers'
 * traffic. When the workers' own sockets cannot be seen, they are taken to
 * listen on every address as the master's user. Empty where `/proc` has no
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
  const held = new Set<string>();
  for (const pid of withGroups(pids)) for (const inode of socketInodes(pid)) held.add(inode);
  const others = listening.filter((l) => !held.has(l.inode));
  let ours = listening.filter((l) => held.has(l.inode));
  if (ours.length === 0) {
    const uid = process.getuid?.() ?? 0;
    ours = [{ inode: "", uid, family: 6, address: "::" }];
  }
  return others.filter((o) => ours.some((w) => sharesTraffic(o, w)));
}
