/**
 * The master's half of the channel protocol, on any byte stream: pairs each
 * new connection with the worker whose token it presents, splits its lines
 * and dispatches them in turns, so that one worker's burst waits behind the
 * others and no connection holds more than its share of the master's memory.
 * The sockets under it live in `channel_socket.ts`.
 *
 * @module
 */

import { encodeLine, LineSplitter, MAX_LINE_BYTES, parseLine } from "../protocol/framing.ts";

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

/** A connection, whichever runtime accepted it. */
export interface Wire {
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

export class Peer implements ChannelPeer {
  readonly token: string;
  readonly events: ChannelEvents;
  /** The connections so far, by stream; an ended one stays as `undefined`. */
  readonly wires: Array<Wire | undefined> = [];
  /** How many connections the token admits. */
  readonly isolates: number;
  closed = false;
  readonly #forget: (peer: Peer) => void;

  constructor(
    token: string,
    events: ChannelEvents,
    isolates: number,
    forget: (peer: Peer) => void,
  ) {
    this.token = token;
    this.events = events;
    this.isolates = isolates;
    this.#forget = forget;
  }

  get connected(): boolean {
    return !this.closed && this.wires.some((w) => w !== undefined);
  }

  /** Takes one more connection; returns its stream, or -1 when the token admits no more. */
  attach(wire: Wire): number {
    if (this.closed || this.wires.length >= this.isolates) return -1;
    this.wires.push(wire);
    if (this.wires.length >= this.isolates) this.#forget(this);
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
export const TOKEN_DEADLINE_MS = 2_000;
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
 * import { READ_BUDGET } from "./channel_pairing.ts";
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
 * import { INBOX_HIGH_BYTES } from "./channel_pairing.ts";
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
export class Pairing {
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
