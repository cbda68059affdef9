/**
 * A worker's end of a Unix socket, on `Deno.connect` or `Bun.connect`
 * directly: neither starts its runtime's Node layer, and a socket costs a Bun
 * worker less memory than a Node IPC channel.
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

import { readChunks, writeAll } from "./deno_conn.ts";

/** A connected Unix socket, read by one reader and written by one writer. */
export interface UnixConn {
  /**
   * Resolves once all of `bytes` were handed to the kernel; rejects when the
   * connection is gone. One write at a time: the next after this one settled.
   */
  write(bytes: Uint8Array): Promise<void>;
  /**
   * Feeds every chunk read to `onChunk` (its memory may be reused after the
   * call) until the peer closes or the connection fails; resolves then. Once.
   */
  read(onChunk: (chunk: Uint8Array) => void): Promise<void>;
  /** Whether the connection may keep the process alive. */
  ref(ref: boolean): void;
  close(): void;
}

/** Whether `handle` (a `Deno.Conn` or a Bun socket) may keep the process alive. */
function setRef(handle: any, ref: boolean): void {
  try {
    if (ref) handle.ref();
    else handle.unref();
  } catch { /* closed */ }
}

function denoConn(conn: any): UnixConn {
  return {
    write: (bytes) => writeAll(conn, bytes),
    read: (onChunk) => readChunks(conn, onChunk),
    ref: (ref) => setRef(conn, ref),
    close() {
      try {
        conn.close();
      } catch { /* already closed */ }
    },
  };
}

/** A write that waits for Bun's `drain`: what the kernel has not taken yet. */
interface Unsent {
  bytes: Uint8Array;
  resolve(): void;
  reject(error: Error): void;
}

async function bunConn(bun: any, path: string): Promise<UnixConn> {
  // Bun writes what the kernel takes now and no more: the rest waits here for `drain`.
  let unsent: Unsent | undefined;
  let onChunk: ((chunk: Uint8Array) => void) | undefined;
  // Read before the reader listens (the master may answer at once): kept, in order.
  let early: Uint8Array[] = [];
  let closed = false;
  let ended!: () => void;
  const end = new Promise<void>((resolve) => (ended = resolve));
  const flush = (socket: any) => {
    const w = unsent;
    if (w === undefined) return;
    const n = Math.max(socket.write(w.bytes), 0);
    if (n < w.bytes.length) {
      w.bytes = w.bytes.subarray(n);
      return;
    }
    unsent = undefined;
    w.resolve();
  };
  const gone = () => {
    if (closed) return;
    closed = true;
    unsent?.reject(new Error("the connection closed"));
    unsent = undefined;
    ended();
  };
  const socket = await bun.connect({
    unix: path,
    socket: {
      data(_socket: any, chunk: Uint8Array) {
        if (onChunk !== undefined) onChunk(chunk);
        else early.push(chunk.slice());
      },
      drain: flush,
      close: gone,
      end: gone,
      error: gone,
    },
  });
  return {
    write(bytes) {
      if (closed) return Promise.reject(new Error("the connection closed"));
      return new Promise((resolve, reject) => {
        unsent = { bytes, resolve, reject };
        flush(socket);
      });
    },
    read(listener) {
      onChunk = listener;
      for (const chunk of early) listener(chunk);
      early = [];
      return end;
    },
    ref: (ref) => setRef(socket, ref),
    close() {
      try {
        socket.end();
      } catch { /* already closed */ }
      gone();
    },
  };
}

/**
 * Connects to the Unix socket at `path`; rejects when no one listens there.
 *
 * @example
 * ```ts ignore
 * import { connectUnix } from "./unix_conn.ts";
 * const conn = await connectUnix("/run/user/1000/forklift-channel-0123/channel.sock");
 * await conn.write(new TextEncoder().encode("token\n"));
 * conn.close();
 * ```
 */
export async function connectUnix(path: string): Promise<UnixConn> {
  const g = globalThis as any;
  if (g.Bun !== undefined) return await bunConn(g.Bun, path);
  return denoConn(await g.Deno.connect({ transport: "unix", path }));
}
