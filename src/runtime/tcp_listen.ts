/**
 * A TCP listener on the runtime's own sockets (`Deno.listen`, `Bun.listen`):
 * each connection as a stream of chunks in and an awaitable write out. Accept
 * errors (EMFILE when the process runs out of descriptors) never end it (see
 * `accept_loop.ts`).
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

import { acceptLoop } from "./accept_loop.ts";

/** One accepted connection. */
export interface TcpConnection {
  /** Writes every byte; rejects when the peer is gone. */
  write(bytes: Uint8Array): Promise<void>;
  /** Closes the connection. */
  close(): void;
}

/** What a listener tells about each connection. */
export interface TcpHandlers {
  /** A new connection; returns what to call with its bytes and when it closes. */
  open(conn: TcpConnection): {
    data(chunk: Uint8Array): void;
    closed(): void;
  };
}

/** A listening socket. */
export interface TcpListener {
  /** The bound port (the real one when 0 was asked for). */
  port: number;
  /** Stops accepting; open connections stay until closed by their owner. */
  close(): void;
}

/**
 * Listens on `host:port`. Throws the runtime's own error when it cannot
 * (address in use, permission denied).
 *
 * @example Echo server on a free port
 * ```ts ignore
 * import { listenTcp } from "./tcp_listen.ts";
 * const listener = listenTcp("127.0.0.1", 0, {
 *   open: (conn) => ({ data: (chunk) => void conn.write(chunk), closed: () => {} }),
 * });
 * listener.close();
 * ```
 */
export function listenTcp(host: string, port: number, handlers: TcpHandlers): TcpListener {
  const g = globalThis as any;
  return g.Bun ? listenBun(g.Bun, host, port, handlers) : listenDeno(g.Deno, host, port, handlers);
}

function listenBun(bun: any, host: string, port: number, handlers: TcpHandlers): TcpListener {
  interface State {
    events?: ReturnType<TcpHandlers["open"]>;
    /** Bytes Bun could not take yet, and who waits for them to go. */
    pending: Uint8Array[];
    waiters: Array<{ resolve(): void; reject(e: Error): void }>;
    gone: boolean;
  }
  const flush = (socket: any, state: State) => {
    while (state.pending.length > 0) {
      const chunk = state.pending[0];
      const n = socket.write(chunk);
      if (n < 0) return;
      if (n < chunk.length) {
        state.pending[0] = chunk.subarray(n);
        return;
      }
      state.pending.shift();
    }
    for (const w of state.waiters.splice(0)) w.resolve();
  };
  const server = bun.listen({
    hostname: host,
    port,
    socket: {
      open(socket: any) {
        const state: State = { pending: [], waiters: [], gone: false };
        socket.data = state;
        state.events = handlers.open({
          write(bytes) {
            if (state.gone) return Promise.reject(new Error("connection closed"));
            return new Promise<void>((resolve, reject) => {
              state.pending.push(bytes);
              state.waiters.push({ resolve, reject });
              flush(socket, state);
            });
          },
          close() {
            socket.end();
          },
        });
      },
      data(socket: any, chunk: Uint8Array) {
        socket.data.events?.data(new Uint8Array(chunk));
      },
      drain(socket: any) {
        flush(socket, socket.data);
      },
      close(socket: any) {
        const state: State = socket.data;
        if (state.gone) return;
        state.gone = true;
        for (const w of state.waiters.splice(0)) w.reject(new Error("connection closed"));
        state.events?.closed();
      },
      error() {
        // The close handler follows.
      },
    },
  });
  return { port: server.port, close: () => server.stop(true) };
}

function listenDeno(deno: any, host: string, port: number, handlers: TcpHandlers): TcpListener {
  const listener = deno.listen({ hostname: host, port, transport: "tcp" });
  const serve = async (conn: any) => {
    let gone = false;
    const events = handlers.open({
      async write(bytes) {
        let at = 0;
        while (at < bytes.length) at += await conn.write(bytes.subarray(at));
      },
      close() {
        if (gone) return;
        gone = true;
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      },
    });
    const buf = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        events.data(buf.slice(0, n));
      }
    } catch {
      // Reset by the peer, or closed by us.
    }
    if (!gone) {
      gone = true;
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
    events.closed();
  };
  const loop = acceptLoop(listener, (conn: any) => void serve(conn));
  return {
    port: listener.addr.port,
    close() {
      loop.stop();
      try {
        listener.close();
      } catch {
        // Closed already.
      }
    },
  };
}
