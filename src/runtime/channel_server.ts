/**
 * The master's end of the socket channels of Deno workers (see
 * `worker_io.ts` for why Deno workers do not get a Node IPC channel): one
 * Unix socket for all of them; each connection names its worker with the
 * token the master gave it, then carries one JSON message per line.
 *
 * Uses `Bun.listen` and `Deno.listen` directly: `node:net` costs Bun about
 * 12 ms to load, on the path from start to the first worker.
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

import { chmodSync, lstatSync, rmSync } from "node:fs";
import process from "node:process";
import { encodeLine, LineSplitter, MAX_LINE_BYTES, parseLine } from "../protocol/framing.ts";
import { readChunks, writeAll } from "./deno_conn.ts";

/** Longest a token line may be; anything longer is not one of ours. */
const MAX_TOKEN_BYTES = 128;

/**
 * The master's end of one worker's channel: one connection, or one per
 * isolate when the worker runs several (`deno serve --parallel`), each a
 * numbered stream.
 */
export interface ChannelPeer {
  /** True once the worker connected and until its connections close. */
  readonly connected: boolean;
  /** Sends a message to one stream, or to every stream; false when none got it. */
  send(message: unknown, stream?: number): boolean;
  /** Forgets the token and closes the connections, if any. */
  close(): void;
}

/** What the master hears on one worker's channel. */
export interface ChannelEvents {
  /** A message, or `undefined` for a line that was not JSON, and the stream it came on. */
  message(message: unknown, stream: number): void;
}

/** The socket all Deno workers connect to. */
export interface ChannelServer {
  readonly path: string;
  /** Connections closed because their first line was no known token. */
  readonly rejected: number;
  /** Expects `streams` connections (1 by default) presenting `token`. */
  expect(token: string, events: ChannelEvents, streams?: number): ChannelPeer;
  /** Stops listening, closes every connection and removes the socket file. */
  close(): void;
}

/** A connection, whichever runtime accepted it. */
interface Wire {
  write(bytes: Uint8Array): void;
  end(): void;
}

class Peer implements ChannelPeer {
  readonly token: string;
  readonly events: ChannelEvents;
  /** The connections so far, by stream; an ended one stays as `undefined`. */
  readonly wires: Array<Wire | undefined> = [];
  /** How many connections the token admits. */
  readonly streams: number;
  closed = false;
  readonly #forget: (peer: Peer) => void;

  constructor(
    token: string,
    events: ChannelEvents,
    streams: number,
    forget: (peer: Peer) => void,
  ) {
    this.token = token;
    this.events = events;
    this.streams = streams;
    this.#forget = forget;
  }

  get connected(): boolean {
    return !this.closed && this.wires.some((w) => w !== undefined);
  }

  /** Takes one more connection; returns its stream, or -1 when the token admits no more. */
  attach(wire: Wire): number {
    if (this.closed || this.wires.length >= this.streams) return -1;
    this.wires.push(wire);
    if (this.wires.length >= this.streams) this.#forget(this);
    return this.wires.length - 1;
  }

  detach(stream: number): void {
    this.wires[stream] = undefined;
  }

  send(message: unknown, stream?: number): boolean {
    if (this.closed) return false;
    const targets = stream === undefined ? this.wires : [this.wires[stream]];
    let sent = false;
    for (const wire of targets) {
      if (wire === undefined) continue;
      try {
        wire.write(encodeLine(message));
        sent = true;
      } catch {
        // That stream is gone; the others may not be.
      }
    }
    return sent;
  }

  close(): void {
    this.closed = true;
    this.#forget(this);
    for (const wire of this.wires) {
      try {
        wire?.end();
      } catch { /* already closed */ }
    }
  }
}

/** Pairs connections with expected tokens and splits their lines. */
/** How long a new connection has to present its token. */
const TOKEN_DEADLINE_MS = 5_000;
/** Connections waiting to present a token at once, at most. */
const MAX_UNNAMED = 64;
/** The pause after a failed accept before the next one. */
const ACCEPT_RETRY_MS = 100;

class Pairing {
  readonly expected = new Map<string, Peer>();
  rejected = 0;
  /** Connections that have not named themselves yet. */
  #unnamed = 0;
  #deadlineMs: number;

  constructor(deadlineMs: number) {
    this.#deadlineMs = deadlineMs;
  }

  /** Returns the byte sink for one new connection. */
  connection(wire: Wire): { data(chunk: Uint8Array): void; closed(): void } {
    let peer: Peer | undefined;
    let stream = -1;
    let dead = false;
    let named = false;
    const settle = () => {
      if (named) return;
      named = true;
      this.#unnamed--;
      clearTimeout(deadline);
    };
    const refuse = () => {
      this.rejected++;
      dead = true;
      settle();
      wire.end();
    };
    // A connection that does not name itself in time, or one too many waiting
    // to, is closed: they would hold descriptors the workers need.
    this.#unnamed++;
    const deadline = setTimeout(() => !named && refuse(), this.#deadlineMs);
    (deadline as { unref?: () => void }).unref?.();
    if (this.#unnamed > MAX_UNNAMED) refuse();
    const split = new LineSplitter((line) => {
      if (dead) return;
      if (peer !== undefined) {
        peer.events.message(line === undefined ? undefined : parseLine(line), stream);
        return;
      }
      const found = line === undefined ? undefined : this.expected.get(line);
      if (found === undefined || found.closed) return refuse();
      stream = found.attach(wire);
      if (stream < 0) return refuse();
      settle();
      peer = found;
      // Past the token, protocol messages may be long.
      split.maxBytes = MAX_LINE_BYTES;
    }, MAX_TOKEN_BYTES);
    return {
      data: (chunk) => {
        if (!dead) split.push(chunk);
      },
      closed: () => {
        dead = true;
        settle();
        peer?.detach(stream);
      },
    };
  }
}

function listenBun(bun: any, path: string, pairing: Pairing): () => void {
  const server = bun.listen({
    unix: path,
    socket: {
      open(socket: any) {
        const pending: Uint8Array[] = [];
        const wire: Wire = {
          write(bytes) {
            if (pending.length > 0) {
              pending.push(bytes);
              return;
            }
            const n = socket.write(bytes);
            if (n < bytes.length) pending.push(bytes.subarray(Math.max(n, 0)));
          },
          end: () => socket.end(),
        };
        socket.data = { wire, pending, sink: pairing.connection(wire) };
      },
      data(socket: any, chunk: Uint8Array) {
        socket.data?.sink.data(chunk);
      },
      drain(socket: any) {
        const pending: Uint8Array[] = socket.data?.pending ?? [];
        while (pending.length > 0) {
          const bytes = pending[0];
          const n = socket.write(bytes);
          if (n < bytes.length) {
            pending[0] = bytes.subarray(Math.max(n, 0));
            return;
          }
          pending.shift();
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
  const conns = new Set<any>();
  const serve = async (conn: any) => {
    conns.add(conn);
    let writing: Promise<unknown> = Promise.resolve();
    const wire: Wire = {
      write(bytes) {
        writing = writing.then(() => writeAll(conn, bytes)).catch(() => {});
      },
      end() {
        try {
          conn.close();
        } catch { /* already closed */ }
      },
    };
    const sink = pairing.connection(wire);
    await readChunks(conn, sink.data);
    sink.closed();
    wire.end();
    conns.delete(conn);
  };
  let open = true;
  (async () => {
    // One failed accept (EMFILE when descriptors run out) must not end the
    // loop: no worker would be heard again. Only closing the listener does.
    while (open) {
      try {
        void serve(await listener.accept());
      } catch (e) {
        if (!open || (e as Error)?.name === "BadResource") return;
        await new Promise((r) => setTimeout(r, ACCEPT_RETRY_MS));
      }
    }
  })();
  return () => {
    open = false;
    try {
      listener.close();
    } catch { /* already closed */ }
    for (const conn of conns) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  };
}

/**
 * Listens on a Unix socket at `path` (replacing a stale file there) for
 * workers' channels.
 *
 * @throws {Error} When the socket cannot be created (e.g. no such directory).
 *
 * @example
 * ```ts ignore
 * import { listenChannel } from "./channel_server.ts";
 * const server = listenChannel("/run/user/1000/forklift-123.sock");
 * const peer = server.expect("token-of-worker-1", { message: (m) => console.log(m) });
 * ```
 */
export function listenChannel(
  path: string,
  options: { tokenDeadlineMs?: number } = {},
): ChannelServer {
  rmSync(path, { force: true });
  const pairing = new Pairing(options.tokenDeadlineMs ?? TOKEN_DEADLINE_MS);
  const g = globalThis as any;
  const stop = g.Bun !== undefined
    ? listenBun(g.Bun, path, pairing)
    : listenDeno(g.Deno, path, pairing);
  // The file's mode follows the umask: make it the owner's alone, and check.
  try {
    chmodSync(path, 0o600);
    const st = lstatSync(path);
    const uid = typeof process.getuid === "function" ? process.getuid() : st.uid;
    if ((st.mode & 0o077) !== 0 || st.uid !== uid || !st.isSocket()) {
      throw new Error(`${path} is not a socket private to this user`);
    }
  } catch (e) {
    stop();
    rmSync(path, { force: true });
    throw e;
  }
  let open = true;
  return {
    path,
    get rejected() {
      return pairing.rejected;
    },
    expect(token, events, streams = 1) {
      const peer = new Peer(token, events, Math.max(1, streams), (p) => {
        if (pairing.expected.get(p.token) === p) pairing.expected.delete(p.token);
      });
      pairing.expected.set(token, peer);
      return peer;
    },
    close() {
      if (!open) return;
      open = false;
      stop();
      rmSync(path, { force: true });
    },
  };
}

/** What a connection attempt says of a Unix socket file. */
export type SocketState = "live" | "stale" | "unknown";

function refused(error: unknown): boolean {
  const g = globalThis as any;
  if (g.Deno?.errors?.ConnectionRefused && error instanceof g.Deno.errors.ConnectionRefused) {
    return true;
  }
  return (error as { code?: unknown } | null)?.code === "ECONNREFUSED";
}

/**
 * Connects to the Unix socket at `path` and hangs up at once: `"live"` when a
 * listener accepted, `"stale"` when the kernel refused (the file outlived the
 * process that listened on it), `"unknown"` for anything else (no such file,
 * no permission).
 *
 * @example
 * ```ts ignore
 * import { probeSocket } from "./channel_server.ts";
 * if (await probeSocket("/tmp/forklift-123.sock") === "stale") console.log("left behind");
 * ```
 */
export async function probeSocket(path: string): Promise<SocketState> {
  const g = globalThis as any;
  try {
    if (g.Bun !== undefined) {
      const socket = await g.Bun.connect({
        unix: path,
        socket: { data() {}, open() {}, close() {}, error() {}, connectError() {} },
      });
      socket.end();
    } else {
      const conn = await g.Deno.connect({ transport: "unix", path });
      conn.close();
    }
    return "live";
  } catch (error) {
    return refused(error) ? "stale" : "unknown";
  }
}

/**
 * Returns a fresh random token (128 bits, hex).
 *
 * @example
 * ```ts
 * import { channelToken } from "./channel_server.ts";
 * console.assert(/^[0-9a-f]{32}$/.test(channelToken()));
 * ```
 */
export function channelToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
