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

// deno-lint-ignore-file no-explicit-any

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

const LIBC = ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1", "libc.so"];

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
  const g = globalThis as any;
  try {
    return g.Bun ? await bunSocket(target) : denoSocket(g.Deno, target);
  } catch {
    return undefined;
  }
}

function firstLibrary<T>(open: (name: string) => T): T {
  let last: unknown;
  for (const name of LIBC) {
    try {
      return open(name);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

/** The C calls, with pointers and sizes already in the runtime's FFI terms. */
interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  sendto(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array, addrLength: number): number;
  clockGettime(clock: number, timespec: BigInt64Array): void;
  close(fd: number): void;
  unload(): void;
}

function systemdSocket(libc: Libc, target: { addr: Uint8Array; length: number }): SystemdSocket {
  const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error("socket() failed");
  const ts = new BigInt64Array(2);
  return {
    send(message) {
      const bytes = new TextEncoder().encode(message);
      if (bytes.length === 0) return false;
      return libc.sendto(fd, bytes, MSG_NOSIGNAL, target.addr, target.length) === bytes.length;
    },
    monotonicUsec() {
      libc.clockGettime(CLOCK_MONOTONIC, ts);
      return ts[0] * 1_000_000n + ts[1] / 1000n;
    },
    close() {
      libc.close(fd);
      libc.unload();
    },
  };
}

async function bunSocket(target: { addr: Uint8Array; length: number }): Promise<SystemdSocket> {
  const { dlopen, FFIType, ptr } = await import("bun:ffi" as string);
  const lib = firstLibrary((name) =>
    dlopen(name, {
      socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
      sendto: {
        args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32],
        returns: FFIType.i64,
      },
      clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
      close: { args: [FFIType.i32], returns: FFIType.i32 },
    })
  );
  const c = lib.symbols;
  return systemdSocket({
    socket: (d, t, p) => c.socket(d, t, p),
    sendto: (fd, buf, flags, addr, len) =>
      Number(c.sendto(fd, ptr(buf), buf.length, flags, ptr(addr), len)),
    clockGettime: (clock, ts) => void c.clock_gettime(clock, ptr(ts)),
    close: (fd) => void c.close(fd),
    unload: () => lib.close(),
  }, target);
}

function denoSocket(deno: any, target: { addr: Uint8Array; length: number }): SystemdSocket {
  const lib = firstLibrary((name) =>
    deno.dlopen(name, {
      socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
      sendto: {
        parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
        result: "isize",
      },
      clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
      close: { parameters: ["i32"], result: "i32" },
    })
  );
  const c = lib.symbols;
  return systemdSocket({
    socket: (d, t, p) => c.socket(d, t, p),
    sendto: (fd, buf, flags, addr, len) =>
      Number(c.sendto(fd, buf, BigInt(buf.length), flags, addr, len)),
    clockGettime: (clock, ts) => void c.clock_gettime(clock, new Uint8Array(ts.buffer)),
    close: (fd) => void c.close(fd),
    unload: () => lib.close(),
  }, target);
}
