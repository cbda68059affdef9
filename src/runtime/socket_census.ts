/**
 * Which TCP sockets of this process a port has, asked of each descriptor
 * (`getsockname`, `TCP_INFO`): a draining server closes its listener only at
 * a moment when no connection it accepted sits without a request in flight
 * and nothing waits in its accept queue, so that closing loses nothing (see
 * `serve.ts`).
 *
 * A few system calls per descriptor: `/proc/net/tcp` would say the same but
 * lists every socket of the host, TIME_WAIT ones included, and takes tens of
 * milliseconds to read under load, long enough for connections to queue
 * unseen. Linux only, through the runtime's FFI (Deno needs `--allow-ffi`);
 * elsewhere there is no census and the caller falls back on a fixed wait.
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

import { openLibc } from "./libc.ts";

/** The sockets of one port this process holds. */
export interface Census {
  /** Connections waiting in this process's listeners' accept queues. */
  backlog: number;
  /** Established connections this process accepted on the port. */
  established: number;
}

/** A census taker, ready to count as often as asked. */
export interface CensusTaker {
  /** Counts the sockets of `port` now. */
  take(port: number): Census;
  /** Lets the C library go. */
  close(): void;
}

const AF_INET = 2;
const AF_INET6 = 10;
const IPPROTO_TCP = 6;
const TCP_INFO = 11;
const TCP_ESTABLISHED = 1;
const TCP_LISTEN = 10;
/** `struct tcp_info`: `tcpi_state` is its first byte; `tcpi_unacked` (a listener's queue) is at 24. */
const TCPI_UNACKED = 24;

/**
 * Adds one socket to `into`: a listener on `port` adds its queue, an
 * established connection whose local port is `port` adds one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addSocket } from "./socket_census.ts";
 * const census = { backlog: 0, established: 0 };
 * addSocket(census, 8000, 8000, 10, 2); // a listener with two connections queued
 * addSocket(census, 8000, 8000, 1, 0); // one accepted connection
 * addSocket(census, 8000, 5432, 1, 0); // a connection to elsewhere: not counted
 * assert.ok(census.backlog === 2 && census.established === 1);
 * ```
 */
export function addSocket(
  into: Census,
  port: number,
  localPort: number,
  tcpState: number,
  unacked: number,
): void {
  if (localPort !== port) return;
  if (tcpState === TCP_LISTEN) into.backlog += unacked;
  else if (tcpState === TCP_ESTABLISHED) into.established++;
}

/** Descriptors tried one by one where `/proc/self/fd` cannot be listed (Deno without `-A`). */
const SCANNED_FDS = 1024;

/**
 * Whether Deno lets this process call the C library already: asking would
 * prompt a worker whose terminal is its own, in the middle of a drain.
 */
function ffiGranted(deno: any): boolean {
  try {
    return deno.permissions?.querySync?.({ name: "ffi" })?.state === "granted";
  } catch {
    return false;
  }
}

/** Lists `/proc/self/fd`, or throws. */
type ListFds = () => string[];

/**
 * How to list `/proc/self/fd`: Deno's own call, not `node:fs`. A Deno
 * program's first touch of `process` starts Deno's Node layer, 3–4 MiB of
 * private memory, which a draining worker would take on for the census alone.
 */
function fdLister(deno: any): ListFds | undefined {
  if (deno !== undefined) {
    if (typeof deno.readDirSync !== "function") return undefined;
    return () => Array.from(deno.readDirSync("/proc/self/fd"), (e: any) => String(e.name));
  }
  const fs = (globalThis as any).process?.getBuiltinModule?.("node:fs");
  return fs === undefined ? undefined : () => fs.readdirSync("/proc/self/fd");
}

/**
 * This process's descriptors: listed from `/proc/self/fd` where Deno lets
 * it (it asks for `-A` there), or else the first {@linkcode SCANNED_FDS}.
 */
function descriptors(deno: any): () => number[] {
  const list = fdLister(deno);
  const readable = (() => {
    if (list === undefined) return false;
    try {
      if (deno !== undefined) {
        const read = deno.permissions?.querySync?.({ name: "read", path: "/proc/self/fd" });
        if (read?.state !== "granted") return false;
      }
      list();
      return true;
    } catch {
      return false;
    }
  })();
  if (readable) return () => list!().map(Number);
  const all = Array.from({ length: SCANNED_FDS }, (_, i) => i);
  return () => all;
}

/**
 * Opens a census taker, or resolves to undefined where there can be none
 * (not Linux, no FFI).
 *
 * @example
 * ```ts ignore
 * import { openCensus } from "./socket_census.ts";
 * const census = await openCensus();
 * console.log(census?.take(8000)); // { backlog: 0, established: 3 }
 * census?.close();
 * ```
 */
export async function openCensus(): Promise<CensusTaker | undefined> {
  const g = globalThis as any;
  const os = g.Deno !== undefined ? g.Deno.build?.os : g.process?.platform;
  if (os !== "linux") return undefined;
  if (g.Deno !== undefined && !ffiGranted(g.Deno)) return undefined;
  const fds = descriptors(g.Deno);
  let libc;
  try {
    libc = await openLibc({
      getsockname: { params: ["i32", "pointer", "pointer"], result: "i32" },
      getsockopt: { params: ["i32", "i32", "i32", "pointer", "pointer"], result: "i32" },
    });
  } catch {
    return undefined;
  }
  const { getsockname, getsockopt } = libc.call;
  const addr = new Uint8Array(128);
  const info = new Uint8Array(256);
  const len = new Uint32Array(1);
  const view = new DataView(info.buffer);
  return {
    take(port: number): Census {
      const census: Census = { backlog: 0, established: 0 };
      for (const fd of fds()) {
        len[0] = addr.length;
        if (getsockname(fd, addr, len) !== 0) continue; // not a socket, or closed since
        const family = addr[0] | (addr[1] << 8);
        if (family !== AF_INET && family !== AF_INET6) continue;
        const localPort = (addr[2] << 8) | addr[3];
        if (localPort !== port) continue;
        len[0] = info.length;
        if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, len) !== 0) continue;
        addSocket(census, port, localPort, info[0], view.getUint32(TCPI_UNACKED, true));
      }
      return census;
    },
    close: () => libc.close(),
  };
}
