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

import { chmodSync, lstatSync, mkdirSync, rmdirSync, unlinkSync } from "node:fs";
import process from "node:process";
import { encodeLine, LineSplitter, MAX_LINE_BYTES, parseLine } from "../protocol/framing.ts";
import { acceptLoop } from "./accept_loop.ts";
import { readChunks } from "./deno_conn.ts";

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
  /** Connections cut off because their peer left more than {@linkcode MAX_OUTBOX_BYTES} unread. */
  readonly cutOff: number;
  /** Times a connection was read no more until its backlog was dispatched. */
  readonly paused: number;
  /** Bytes of lines read from all connections and not yet dispatched. */
  readonly backlog: number;
  /** Expects `streams` connections (1 by default) presenting `token`. */
  expect(token: string, events: ChannelEvents, streams?: number): ChannelPeer;
  /** Stops listening, closes every connection and removes the socket file. */
  close(): void;
}

/** A connection, whichever runtime accepted it. */
interface Wire {
  /**
   * Queues bytes for the peer; false (and the connection cut off) when more
   * than {@linkcode MAX_OUTBOX_BYTES} would wait for a peer that does not read.
   */
  write(bytes: Uint8Array): boolean;
  end(): void;
  /** Stops reading from the connection until {@linkcode resume}: the peer's writes then wait. */
  pause(): void;
  resume(): void;
}

/**
 * Bytes the master lets wait for one connection whose peer does not read:
 * a welcome, acks and stop requests are a few hundred bytes each, so an honest
 * worker never comes near it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MAX_OUTBOX_BYTES } from "./channel_server.ts";
 * assert.ok(MAX_OUTBOX_BYTES === 1024 * 1024);
 * ```
 */
export const MAX_OUTBOX_BYTES = 1024 * 1024;

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
        if (wire.write(encodeLine(message))) sent = true;
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

/** How long a new connection has to present its token. */
const TOKEN_DEADLINE_MS = 2_000;
/** Connections waiting to present a token at once, at most. */
const MAX_UNNAMED = 64;

/**
 * Messages of one connection dispatched per turn of the event loop, at most:
 * a worker's burst then waits its turn behind the other workers' messages,
 * the master's timers and signals, instead of holding them all back.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { READ_BUDGET } from "./channel_server.ts";
 * assert.ok(READ_BUDGET === 256);
 * ```
 */
export const READ_BUDGET = 256;
/**
 * Bytes of lines read from one connection and not yet dispatched, past which
 * it is read no more until they are: the worker's writes wait instead of the
 * master's memory growing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { INBOX_HIGH_BYTES } from "./channel_server.ts";
 * assert.ok(INBOX_HIGH_BYTES === 1024 * 1024);
 * ```
 */
export const INBOX_HIGH_BYTES = 1024 * 1024;
/** Backlog under which a paused connection is read again. */
const INBOX_LOW_BYTES = INBOX_HIGH_BYTES / 4;

/** A first-in first-out queue; taking from the front is O(1). */
class Fifo<T> {
  #items: T[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  shift(): T {
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined!;
    if (this.#head === this.#items.length) this.clear();
    else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}

/** The lines of one named connection that wait to be dispatched. */
class Inbox {
  readonly lines = new Fifo<string | undefined>();
  bytes = 0;
  paused = false;
  readonly wire: Wire;
  readonly #deliver: (line: string | undefined) => void;

  constructor(wire: Wire, deliver: (line: string | undefined) => void) {
    this.wire = wire;
    this.#deliver = deliver;
  }

  push(line: string | undefined): void {
    this.lines.push(line);
    this.bytes += line?.length ?? 0;
  }

  /** Dispatches up to `budget` lines, oldest first. */
  drain(budget: number): void {
    for (let i = 0; i < budget && this.lines.length > 0; i++) {
      const line = this.lines.shift();
      this.bytes -= line?.length ?? 0;
      try {
        this.#deliver(line);
      } catch {
        // A listener that throws ends the connection, as a read error would.
        this.lines.clear();
        this.bytes = 0;
        this.wire.end();
        return;
      }
    }
  }
}

/**
 * Runs `fn` once the event loop has polled for I/O. A timer, not
 * `setImmediate`: Deno runs a dozen immediates for each poll, so turns taken
 * that way would starve the reads of every other connection.
 */
function soon(fn: () => void): void {
  setTimeout(fn, 0);
}

/** Pairs connections with expected tokens, splits their lines and dispatches them in turns. */
class Pairing {
  readonly expected = new Map<string, Peer>();
  rejected = 0;
  cutOff = 0;
  paused = 0;
  /** Told of each connection cut off for not reading. */
  onCutOff: (queued: number) => void = () => {};
  /**
   * Connections that have not named themselves yet, oldest first, each by
   * the function that closes it.
   */
  readonly #unnamed = new Set<() => void>();
  /** Inboxes with lines left after their turn. */
  readonly #waiting = new Set<Inbox>();
  #scheduled = false;
  #evicting = false;
  #deadlineMs: number;

  constructor(deadlineMs: number) {
    this.#deadlineMs = deadlineMs;
  }

  get backlog(): number {
    let bytes = 0;
    for (const inbox of this.#waiting) bytes += inbox.bytes;
    return bytes;
  }

  /** Counts and reports a connection cut off with `queued` bytes unread. */
  cut(queued: number): void {
    this.cutOff++;
    try {
      this.onCutOff(queued);
    } catch { /* a report must not break the channel */ }
  }

  /**
   * Closes the oldest unnamed connections past {@linkcode MAX_UNNAMED}, once
   * the event loop has read what arrived: a worker's token comes right after
   * its connection, but is read only on the next poll, and a crowd accepted
   * in the same batch must not push it out before then.
   */
  #evictSoon(): void {
    if (this.#evicting) return;
    this.#evicting = true;
    setTimeout(() => {
      this.#evicting = false;
      for (const refuse of this.#unnamed) {
        if (this.#unnamed.size <= MAX_UNNAMED) break;
        refuse();
      }
    }, 0);
  }

  /** Lines were added to `inbox`: dispatches a turn's worth now unless it waits its turn already. */
  #fed(inbox: Inbox): void {
    if (!this.#waiting.has(inbox)) {
      inbox.drain(READ_BUDGET);
      if (inbox.lines.length === 0) return;
      this.#waiting.add(inbox);
      this.#schedule();
    }
    if (!inbox.paused && inbox.bytes > INBOX_HIGH_BYTES) {
      inbox.paused = true;
      this.paused++;
      inbox.wire.pause();
    }
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    soon(this.#turn);
  }

  /** One turn: every waiting connection dispatches up to its budget. */
  readonly #turn = (): void => {
    this.#scheduled = false;
    for (const inbox of [...this.#waiting]) {
      inbox.drain(READ_BUDGET);
      if (inbox.paused && inbox.bytes <= INBOX_LOW_BYTES) {
        inbox.paused = false;
        inbox.wire.resume();
      }
      if (inbox.lines.length === 0) this.#waiting.delete(inbox);
    }
    if (this.#waiting.size > 0) this.#schedule();
  };

  /** Returns the byte sink for one new connection. */
  connection(wire: Wire): { data(chunk: Uint8Array): void; closed(): void } {
    let peer: Peer | undefined;
    let stream = -1;
    let inbox: Inbox | undefined;
    let dead = false;
    const settle = () => {
      this.#unnamed.delete(refuse);
      clearTimeout(deadline);
    };
    const refuse = () => {
      if (dead) return;
      this.rejected++;
      dead = true;
      settle();
      wire.end();
    };
    // A connection that does not name itself in time is closed, and so is the
    // oldest waiting one when too many wait: they would hold descriptors the
    // workers need. Closing the newest instead would let anyone who keeps
    // that many open lock every new worker out; a worker names itself at
    // once, so it is never the oldest for long.
    this.#unnamed.add(refuse);
    const deadline = setTimeout(refuse, this.#deadlineMs);
    (deadline as { unref?: () => void }).unref?.();
    if (this.#unnamed.size > MAX_UNNAMED) this.#evictSoon();
    const split = new LineSplitter((line) => {
      if (dead) return;
      if (inbox !== undefined) return inbox.push(line);
      const found = line === undefined ? undefined : this.expected.get(line);
      if (found === undefined || found.closed) return refuse();
      stream = found.attach(wire);
      if (stream < 0) return refuse();
      settle();
      peer = found;
      const events = found.events;
      inbox = new Inbox(
        wire,
        (l) => events.message(l === undefined ? undefined : parseLine(l), stream),
      );
      // Past the token, protocol messages may be long.
      split.maxBytes = MAX_LINE_BYTES;
    }, MAX_TOKEN_BYTES);
    return {
      data: (chunk) => {
        if (dead) return;
        split.push(chunk);
        if (inbox !== undefined && inbox.lines.length > 0) this.#fed(inbox);
      },
      closed: () => {
        dead = true;
        settle();
        // What was read before the end (a last harvest, `bye`) is still
        // dispatched, in its turn; the stream is gone once it is.
        peer?.detach(stream);
      },
    };
  }
}

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

/** A file as the kernel knows it: what a path named when it was made. */
interface FileId {
  dev: number;
  ino: number;
}

function fileId(path: string): FileId | undefined {
  try {
    const st = lstatSync(path);
    return { dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}

/**
 * Removes `path` only if it is still the file `id` named: another master's
 * socket or directory, made at that path since, is never ours to remove.
 * (Bun unlinks a Unix listener's path itself as it stops; the private
 * directory is what keeps anything but our socket from being there.)
 */
function removeIfSame(path: string, id: FileId | undefined, directory: boolean): void {
  const now = fileId(path);
  if (id === undefined || now === undefined || now.dev !== id.dev || now.ino !== id.ino) return;
  try {
    if (directory) rmdirSync(path);
    else unlinkSync(path);
  } catch { /* gone meanwhile, or not empty: left as it is */ }
}

/** Throws unless `path` is a `kind` owned by this user that no one else may use. */
function assertPrivate(path: string, kind: "directory" | "socket"): void {
  const st = lstatSync(path);
  const uid = typeof process.getuid === "function" ? process.getuid() : st.uid;
  const isKind = kind === "directory" ? st.isDirectory() : st.isSocket();
  if (!isKind || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new Error(`${path} is not a ${kind} private to this user`);
  }
}

/**
 * Makes the directory of `path` (it must not exist: its name is the master's
 * alone, see `channelPath()`), private to this user, and listens on a Unix
 * socket at `path` in it for workers' channels. Closing removes the socket
 * and the directory, and nothing that replaced them.
 *
 * @throws {Error} When the directory exists already or the socket cannot be
 *   created (e.g. no such parent directory).
 *
 * @example
 * ```ts ignore
 * import { listenChannel } from "./channel_server.ts";
 * const server = listenChannel("/run/user/1000/forklift-channel-0123456789abcdef/channel.sock");
 * const peer = server.expect("token-of-worker-1", { message: (m) => console.log(m) });
 * ```
 */
export function listenChannel(
  path: string,
  options: {
    tokenDeadlineMs?: number;
    /** Told of each connection cut off for leaving `queued` bytes unread. */
    onCutOff?: (queued: number) => void;
  } = {},
): ChannelServer {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  // Not recursive: a directory that exists (another's, or a trap) is an error.
  mkdirSync(dir, { mode: 0o700 });
  const dirId = fileId(dir);
  let socketId: FileId | undefined;
  let stop: (() => void) | undefined;
  const pairing = new Pairing(options.tokenDeadlineMs ?? TOKEN_DEADLINE_MS);
  if (options.onCutOff) pairing.onCutOff = options.onCutOff;
  try {
    assertPrivate(dir, "directory");
    const g = globalThis as any;
    stop = g.Bun !== undefined
      ? listenBun(g.Bun, path, pairing)
      : listenDeno(g.Deno, path, pairing);
    socketId = fileId(path);
    // The directory already keeps others out; the socket's mode follows the
    // umask: make it the owner's alone too, and check.
    chmodSync(path, 0o600);
    assertPrivate(path, "socket");
  } catch (e) {
    stop?.();
    removeIfSame(path, socketId, false);
    removeIfSame(dir, dirId, true);
    throw e;
  }
  let open = true;
  return {
    path,
    get rejected() {
      return pairing.rejected;
    },
    get cutOff() {
      return pairing.cutOff;
    },
    get paused() {
      return pairing.paused;
    },
    get backlog() {
      return pairing.backlog;
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
      stop!();
      removeIfSame(path, socketId, false);
      removeIfSame(dir, dirId, true);
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
 * if (await probeSocket("/tmp/forklift-channel-0123456789abcdef/channel.sock") === "stale") console.log("left behind");
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
 * import assert from "node:assert/strict";
 * import { channelToken } from "./channel_server.ts";
 * assert.ok(/^[0-9a-f]{32}$/.test(channelToken()));
 * ```
 */
export function channelToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
