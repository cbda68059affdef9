/**
 * The Unix socket under the workers' channels, on `Bun.listen` or
 * `Deno.listen` directly (`node:net` costs Bun about 12 ms to load, on the
 * path from start to the first worker): each connection's bytes go to the
 * pairing (see `channel_pairing.ts`), and what the master sends waits in a
 * bounded outbox for a peer that reads slowly.
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

import { acceptLoop } from "./accept_loop.ts";
import type { Pairing, Wire } from "./channel_pairing.ts";
import { readChunks } from "./deno_conn.ts";

/**
 * Bytes the master lets wait for one connection whose peer does not read:
 * a welcome, acks and stop requests are a few hundred bytes each, so an honest
 * worker never comes near it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MAX_OUTBOX_BYTES } from "./channel_socket.ts";
 * assert.ok(MAX_OUTBOX_BYTES === 1024 * 1024);
 * ```
 */
export const MAX_OUTBOX_BYTES = 1024 * 1024;

/** Bytes waiting to be written, in order; taking from the front is O(1). */
class Outbox {
  #parts: Uint8Array[] = [];
  #head = 0;
  bytes = 0;

  push(bytes: Uint8Array): void {
    this.#parts.push(bytes);
    this.bytes += bytes.length;
  }

  /** The oldest bytes not yet written, if any. */
  first(): Uint8Array | undefined {
    return this.#parts[this.#head];
  }

  /** Drops the first `n` bytes of {@linkcode first}: the kernel took them. */
  took(n: number): void {
    const first = this.#parts[this.#head];
    this.bytes -= n;
    if (n < first.length) {
      this.#parts[this.#head] = first.subarray(n);
      return;
    }
    this.#parts[this.#head++] = undefined!;
    if (this.#head === this.#parts.length) this.clear();
    else if (this.#head > 1024 && this.#head * 2 > this.#parts.length) {
      this.#parts = this.#parts.slice(this.#head);
      this.#head = 0;
    }
  }

  clear(): void {
    this.#parts = [];
    this.#head = 0;
    this.bytes = 0;
  }
}

function listenBun(bun: any, path: string, pairing: Pairing): () => void {
  const server = bun.listen({
    unix: path,
    socket: {
      open(socket: any) {
        // Bun writes what the kernel takes now and no more: the rest waits here.
        const pending = new Outbox();
        let cut = false;
        const wire: Wire = {
          write(bytes) {
            if (cut) return false;
            if (pending.bytes === 0) {
              const n = Math.max(socket.write(bytes), 0);
              if (n === bytes.length) return true;
              bytes = bytes.subarray(n);
            }
            pending.push(bytes);
            if (pending.bytes <= MAX_OUTBOX_BYTES) return true;
            cut = true;
            pairing.cut(pending.bytes);
            pending.clear();
            socket.terminate();
            return false;
          },
          end: () => socket.end(),
          pause() {
            try {
              socket.pause();
            } catch { /* closed */ }
          },
          resume() {
            try {
              socket.resume();
            } catch { /* closed */ }
          },
        };
        socket.data = { pending, sink: pairing.connection(wire) };
      },
      data(socket: any, chunk: Uint8Array) {
        socket.data?.sink.data(chunk);
      },
      drain(socket: any) {
        const pending: Outbox | undefined = socket.data?.pending;
        for (let bytes = pending?.first(); bytes !== undefined; bytes = pending!.first()) {
          const n = Math.max(socket.write(bytes), 0);
          pending!.took(n);
          if (n < bytes.length) return;
        }
      },
      close(socket: any) {
        socket.data?.sink.closed();
      },
      error(socket: any) {
        socket.data?.sink.closed();
      },
    },
  });
  return () => server.stop(true);
}

function listenDeno(deno: any, path: string, pairing: Pairing): () => void {
  const listener = deno.listen({ transport: "unix", path });
  const wires = new Set<Wire>();
  const serve = async (conn: any) => {
    const pending = new Outbox();
    let writing = false;
    let cut = false;
    // One write at a time, from the front of the outbox: a peer that does
    // not read leaves one write waiting, never a chain of them.
    const pump = async () => {
      writing = true;
      try {
        for (let bytes = pending.first(); bytes !== undefined; bytes = pending.first()) {
          pending.took(await conn.write(bytes));
        }
      } catch {
        pending.clear(); // closed by either end
      }
      writing = false;
    };
    const wire: Wire = {
      write(bytes) {
        if (cut) return false;
        pending.push(bytes);
        if (pending.bytes > MAX_OUTBOX_BYTES) {
          cut = true;
          pairing.cut(pending.bytes);
          pending.clear();
          wire.end();
          return false;
        }
        if (!writing) void pump();
        return true;
      },
      end() {
        try {
          conn.close();
        } catch { /* already closed */ }
        // A paused read loop must wake to see the connection closed.
        wire.resume();
      },
      pause() {
        gate ??= new Promise((resolve) => (unpause = resolve));
      },
      resume() {
        gate = undefined;
        unpause?.();
      },
    };
    // Paused, the read loop waits here before its next read.
    let gate: Promise<void> | undefined;
    let unpause: (() => void) | undefined;
    wires.add(wire);
    const sink = pairing.connection(wire);
    await readChunks(conn, sink.data, () => gate);
    sink.closed();
    wire.end();
    wires.delete(wire);
  };
  // A failed accept must not end the loop: no worker would be heard again.
  const loop = acceptLoop(listener, (conn) => void serve(conn));
  return () => {
    loop.stop();
    try {
      listener.close();
    } catch { /* already closed */ }
    for (const wire of wires) wire.end();
  };
}

/**
 * Listens on a Unix socket at `path` and feeds every connection to
 * `pairing`; returns what stops listening and closes every connection.
 *
 * @example
 * ```ts ignore
 * import { Pairing } from "./channel_pairing.ts";
 * import { listenChannelSocket } from "./channel_socket.ts";
 * const stop = listenChannelSocket("/run/user/1000/forklift-channel-0123/channel.sock", new Pairing(2_000));
 * stop();
 * ```
 */
export function listenChannelSocket(path: string, pairing: Pairing): () => void {
  const g = globalThis as any;
  return g.Bun !== undefined ? listenBun(g.Bun, path, pairing) : listenDeno(g.Deno, path, pairing);
}
