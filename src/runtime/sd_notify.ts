/**
 * systemd's notification protocol from the master's own process: one
 * datagram per state change to the Unix socket named by `NOTIFY_SOCKET`.
 * Neither Deno nor Bun offers Unix datagram sockets, and a helper such as
 * `systemd-notify` would send from its own pid, which systemd ignores under
 * its default `NotifyAccess=main`; so the C library is called directly
 * (`socket`, `sendto`, `clock_gettime`), through the runtime's FFI, loaded
 * only when `NOTIFY_SOCKET` is set.
 *
 * @module
 */

import { openLibc } from "./libc.ts";

/** A connection to systemd's notification socket. */
export interface SystemdSocket {
  /** Sends one message (`READY=1`, `STATUS=…`, newline-separated); false when it did not go. */
  send(message: string): boolean;
  /** `CLOCK_MONOTONIC` in microseconds, as `MONOTONIC_USEC=` wants it. */
  monotonicUsec(): bigint;
  /** Closes the socket. */
  close(): void;
}

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
const CLOCK_MONOTONIC = 1;
const SUN_PATH = 108;

/** The `sockaddr_un` of `path` (`@name` for an abstract socket) and its length. */
function address(path: string): { addr: Uint8Array; length: number } | undefined {
  const name = new TextEncoder().encode(path.startsWith("@") ? `\0${path.slice(1)}` : path);
  if (name.length >= SUN_PATH) return undefined;
  const addr = new Uint8Array(2 + SUN_PATH);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(name, 2);
  // A path socket's address ends with its NUL; an abstract one's does not.
  return { addr, length: 2 + name.length + (path.startsWith("@") ? 0 : 1) };
}

/**
 * Opens a datagram socket towards `path`; undefined where the C library or
 * FFI is not available (the caller then tells the user, once).
 *
 * @example
 * ```ts ignore
 * import { openSystemdSocket } from "./sd_notify.ts";
 * const sd = await openSystemdSocket(process.env.NOTIFY_SOCKET!);
 * sd?.send("READY=1\nSTATUS=2 workers ready");
 * ```
 */
export async function openSystemdSocket(path: string): Promise<SystemdSocket | undefined> {
  const target = address(path);
  if (target === undefined) return undefined;
  let libc;
  try {
    libc = await openLibc({
      socket: { params: ["i32", "i32", "i32"], result: "i32" },
      sendto: { params: ["i32", "pointer", "usize", "i32", "pointer", "u32"], result: "isize" },
      clock_gettime: { params: ["i32", "pointer"], result: "i32" },
      close: { params: ["i32"], result: "i32" },
    });
  } catch {
    return undefined;
  }
  const c = libc.call;
  const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    libc.close();
    return undefined;
  }
  const ts = new BigInt64Array(2);
  return {
    send(message) {
      const bytes = new TextEncoder().encode(message);
      if (bytes.length === 0) return false;
      return c.sendto(fd, bytes, bytes.length, MSG_NOSIGNAL, target.addr, target.length) ===
        bytes.length;
    },
    monotonicUsec() {
      c.clock_gettime(CLOCK_MONOTONIC, ts);
      return ts[0] * 1_000_000n + ts[1] / 1000n;
    },
    close() {
      c.close(fd);
      libc.close();
    },
  };
}
