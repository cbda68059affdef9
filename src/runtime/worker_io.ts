/**
 * A worker's identity and its channel to the master, for the reporter.
 *
 * Workers that forklift injects, on Deno and on Bun, talk over a Unix socket
 * named by `FORKLIFT_CHANNEL`: in Deno, touching `process` or having a Node IPC
 * channel at all starts the Node compatibility layer, which delays the
 * server's first answer by 15–40 ms, and in Bun a Node IPC channel costs each
 * worker 100–200 KiB more memory than the socket. A program that imports the
 * reporter itself and was not injected (no socket named) talks over the Node
 * IPC channel its master opened (`process.send` / `process.on("message")`),
 * reached through the `process` global, never an import.
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

import { backoff, type BackoffPolicy } from "../protocol/backoff.ts";
import { CHANNEL_ENV, CHANNEL_TOKEN_ENV, ISOLATES_ENV, MASTER_PID_ENV } from "../protocol/env.ts";
import { encodeLine, LineSplitter, parseLine } from "../protocol/framing.ts";
import { forgetEnv, readEnv } from "./read_env.ts";
import { unrefTimer } from "./timers.ts";
import { connectUnix, type UnixConn } from "./unix_conn.ts";

/** How long after `welcome` a worker lets go of its Node IPC channel. */
export const UNREF_DELAY_MS = 100;

/** What the reporter needs of its process and channel. */
export interface WorkerIO {
  readonly pid: number;
  readonly ppid: number;
  /** Reads an environment variable, `undefined` when unset or not permitted. */
  env(name: string): string | undefined;
  /** Whether a channel to a parent exists and has not closed. Opens nothing. */
  connected(): boolean;
  /** Sends a message; `done` is called once it left (or failed). */
  send(message: unknown, done?: (error: unknown) => void): void;
  /** Listens to messages from the parent (opens the channel). */
  onMessage(listener: (raw: unknown) => void): void;
  /** Listens for the channel closing (the parent is gone). */
  onDisconnect(listener: () => void): void;
  /** Whether the channel may keep the process alive. */
  refChannel(ref: boolean): void;
  /** Runs `fn` soon, without a timer. */
  nextTick(fn: () => void): void;
  /** Ends the process. */
  exit(code: number): void;
  /**
   * Reporters in this process: one, or one per isolate (`deno serve
   * --parallel`). With several, none may end the process (it would end them
   * all): the master stops it once each has said `bye`.
   */
  readonly isolates?: number;
  /** Says the program runs (its server listens): a deferred channel opens now. */
  wake(): void;
}

function g(): any {
  return globalThis as any;
}

/** The Node IPC channel through the `process` global (Bun, Node, and Deno's fallback). */
function processIO(): WorkerIO {
  const p = g().process;
  const bun = typeof g().Bun === "object";
  let unrefLater: ReturnType<typeof setTimeout> | undefined;
  const touchChannel = (ref: boolean) => {
    try {
      if (ref) p.channel?.ref?.();
      else p.channel?.unref?.();
    } catch { /* channel already gone */ }
  };
  return {
    pid: p.pid,
    ppid: p.ppid,
    env: readEnv,
    connected: () => typeof p.send === "function" && p.connected !== false,
    send(message, done) {
      try {
        // A callback makes Bun start its process.nextTick queue, 2 ms of main
        // thread in the middle of a worker's boot: Bun gets none unless the
        // caller waits for one. Without one, a send on a closed channel is an
        // 'error' event on process, which Bun does not throw and Node does.
        if (done === undefined && bun) p.send(message);
        else p.send(message, (error: unknown) => done?.(error ?? null));
      } catch (error) {
        done?.(error);
      }
    },
    onMessage: (listener) => void p.on("message", listener),
    onDisconnect: (listener) => void p.on("disconnect", listener),
    refChannel(ref) {
      clearTimeout(unrefLater);
      if (ref) touchChannel(true);
      // Bun builds the channel object on first touch, which costs 2-4 ms of
      // main thread: not while the server is answering its first requests.
      else unrefLater = setTimeout(() => touchChannel(false), UNREF_DELAY_MS);
    },
    nextTick: (fn) => p.nextTick(fn),
    exit: (code) => p.exit(code),
    wake: () => {},
  };
}

/**
 * Bytes a worker lets wait for a master that reads nothing (a stopped master,
 * or one that paused this worker's channel for sending too much); past them
 * a message is dropped and its `done` told so, instead of the app's memory
 * growing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MAX_UNSENT_BYTES } from "./worker_io.ts";
 * assert.ok(MAX_UNSENT_BYTES === 32 * 1024 * 1024);
 * ```
 */
export const MAX_UNSENT_BYTES = 32 * 1024 * 1024;

/**
 * Waits before each new try of a connection the master closed before it said
 * anything: about a second in all over {@linkcode RECONNECT_TRIES} tries.
 */
const RECONNECT_BACKOFF: BackoffPolicy = { firstMs: 40, maxMs: 1_000, factor: 2.5 };
/** Tries of a connection the master closed before it said anything. */
const RECONNECT_TRIES = 4;
/** Most a worker says before the master answers that it keeps to say again (a hello is < 1 KiB). */
const MAX_EARLY_BYTES = 64 * 1024;

/** A worker's Unix socket to the master, opened on first use. */
class SocketChannel {
  readonly #path: string;
  readonly #token: string;
  /** Whether the connection waits for the program to run (Deno), or opens at once (Bun). */
  readonly #defer: boolean;
  #conn: UnixConn | undefined;
  #opened = false;
  #closed = false;
  // Unref'd until the reporter stops: a worker is kept alive by its server,
  // never by its channel.
  #ref = false;
  #writing: Promise<unknown> = Promise.resolve();
  /** Bytes handed to {@linkcode send} and not yet written. */
  #unsent = 0;
  /** Settles once connected (or failed); pending until opened. */
  #connection: Promise<UnixConn> = new Promise(() => {});
  /** Opens the deferred connection; unset before opening and after. */
  #connect: (() => void) | undefined;
  readonly #messageListeners: Array<(raw: unknown) => void> = [];
  readonly #disconnectListeners: Array<() => void> = [];
  /** Whether the master has said anything: until then a closed connection is tried again. */
  #heard = false;
  /** What was written before the master said anything, to say again on a new connection. */
  #early: Uint8Array[] = [];
  #earlyBytes = 0;
  #retries = 0;

  constructor(path: string, token: string, defer: boolean) {
    this.#path = path;
    this.#token = token;
    this.#defer = defer;
  }

  get closed(): boolean {
    return this.#closed;
  }

  onMessage(listener: (raw: unknown) => void): void {
    this.#messageListeners.push(listener);
    this.#open();
  }

  onDisconnect(listener: () => void): void {
    this.#disconnectListeners.push(listener);
  }

  ref(ref: boolean): void {
    this.#ref = ref;
    this.#conn?.ref(ref);
  }

  send(message: unknown, done?: (error: unknown) => void): void {
    if (this.#closed) {
      done?.(new Error("channel closed"));
      return;
    }
    const bytes = encodeLine(message);
    if (this.#unsent + bytes.length > MAX_UNSENT_BYTES) {
      done?.(new Error("the master reads nothing: message dropped"));
      return;
    }
    this.#unsent += bytes.length;
    this.#open();
    this.#write(bytes).then(() => {
      this.#unsent -= bytes.length;
      done?.(null);
    }, (error) => {
      this.#unsent -= bytes.length;
      done?.(error);
    });
  }

  #write(bytes: Uint8Array): Promise<void> {
    const next = this.#writing.then(async () => {
      const conn = await this.#connection;
      const early = !this.#heard;
      if (early) this.#keepEarly(bytes);
      try {
        await conn.write(bytes);
      } catch (error) {
        // Said again on the next connection, if there is one.
        if (!(early && this.#mayRetry())) throw error;
      }
    });
    // A failed write must not wedge the ones after it; they fail on their own.
    this.#writing = next.catch(() => {});
    return next;
  }

  /** Opens the connection: `now`, or once the program runs (on Deno), or at {@linkcode wake}. */
  #open(now: boolean = !this.#defer): void {
    if (this.#opened) return;
    this.#opened = true;
    let resolve!: (conn: UnixConn) => void;
    let reject!: (error: unknown) => void;
    this.#connection = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.#connection.catch(() => {});
    this.#connect = () => {
      this.#connect = undefined;
      connectUnix(this.#path).then(async (conn) => {
        this.#conn = conn;
        if (!this.#ref) conn.ref(false);
        void this.#read(conn);
        // The token first, then, on a connection tried again, what the last one carried.
        try {
          await conn.write(new TextEncoder().encode(`${this.#token}\n`));
          for (const bytes of this.#early) await conn.write(bytes);
        } catch {
          // The connection is gone: #read() sees it.
        }
        resolve(conn);
      }, (error: unknown) => {
        // Said once, on the worker's stderr: the master cannot hear it otherwise.
        console.error(
          `forklift: this worker cannot reach the master's socket ${this.#path}: ${
            String(error).split("\n")[0]
          }`,
        );
        reject(error);
        this.#close();
      });
    };
    // Deno runs the event loop to completion after a preload, before it loads
    // the program, and a first connect or timer costs it milliseconds of lazy
    // loading: connecting now would hold the program's start. There the
    // connection opens once the program runs: when its server listens
    // ({@linkcode wake}) or its main module has loaded, whichever comes first.
    // Bun has neither cost (nor a `load` event).
    if (now) this.wake();
    else if (this.#defer) g().addEventListener?.("load", () => this.wake(), { once: true });
  }

  /** The program is running: open the connection if it is still deferred. */
  wake(): void {
    this.#connect?.();
  }

  async #read(conn: UnixConn): Promise<void> {
    const split = new LineSplitter((line) => {
      if (!this.#heard) {
        this.#heard = true;
        this.#early = [];
        this.#earlyBytes = 0;
      }
      const message = line === undefined ? undefined : parseLine(line);
      for (const l of this.#messageListeners) l(message);
    });
    await conn.read((chunk) => split.push(chunk));
    if (this.#mayRetry()) return this.#retry(conn);
    this.#close();
  }

  /**
   * Whether a connection closed now is tried again: the master closed it
   * before saying anything, as it does to the longest waiting of many
   * connections yet to name themselves (another local process may crowd the
   * socket); a worker whose token it refuses gives up after the last try.
   */
  #mayRetry(): boolean {
    return !this.#heard && !this.#closed && this.#retries < RECONNECT_TRIES &&
      this.#earlyBytes <= MAX_EARLY_BYTES;
  }

  #retry(old: UnixConn): void {
    old.close();
    const delay = backoff(this.#retries++, RECONNECT_BACKOFF);
    this.#opened = false;
    this.#open(false);
    const timer = setTimeout(() => this.wake(), delay);
    if (!this.#ref) unrefTimer(timer);
  }

  #keepEarly(bytes: Uint8Array): void {
    this.#earlyBytes += bytes.length;
    if (this.#earlyBytes <= MAX_EARLY_BYTES) this.#early.push(bytes);
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn?.close();
    for (const l of this.#disconnectListeners) l();
  }
}

/** The process a socket channel's worker runs as, on either runtime. */
interface OwnProcess {
  pid: number;
  ppid: number;
  exit(code: number): void;
}

/**
 * The channel of a worker whose master named a socket, or of a Deno program
 * that has none; `undefined` for a Bun program with none (it has `process`).
 */
function socketIO(own: OwnProcess, deno: boolean): WorkerIO | undefined {
  const path = readEnv(CHANNEL_ENV);
  const token = readEnv(CHANNEL_TOKEN_ENV);
  const isolates = Number(readEnv(ISOLATES_ENV) ?? 1) || 1;
  // The app's own subprocesses must not inherit the token: one that connected
  // first would take this worker's place on the channel. Isolates share the
  // environment and each needs the token: there the master admits as many
  // connections as isolates, and no more.
  if (token && isolates <= 1) forgetEnv(CHANNEL_TOKEN_ENV);
  if (!path || !token) {
    if (!deno) return undefined;
    // No socket named: only a program run by forklift without injection (whose
    // master gave it a Node IPC channel) needs `process`; anything else must
    // not pay for the Node layer.
    const master = readEnv(MASTER_PID_ENV);
    if (master !== undefined && Number(master) === own.ppid) return undefined;
  }
  const channel = path && token ? new SocketChannel(path, token, deno) : undefined;
  return {
    pid: own.pid,
    ppid: own.ppid,
    env: readEnv,
    connected: () => channel !== undefined && !channel.closed,
    send(message, done) {
      if (channel === undefined) done?.(new Error("no channel"));
      else channel.send(message, done);
    },
    onMessage: (listener) => channel?.onMessage(listener),
    onDisconnect: (listener) => channel?.onDisconnect(listener),
    refChannel: (ref) => channel?.ref(ref),
    nextTick: (fn) => queueMicrotask(fn),
    exit: (code) => own.exit(code),
    wake: () => channel?.wake(),
    isolates,
  };
}

/**
 * Returns this process's identity and channel to a forklift master.
 *
 * @example
 * ```ts ignore
 * import { workerIO } from "./worker_io.ts";
 * const io = workerIO();
 * if (io.connected()) io.send({ type: "hello" });
 * ```
 */
export function workerIO(): WorkerIO {
  const deno = g().Deno;
  if (deno !== undefined && typeof deno.pid === "number") {
    return socketIO({ pid: deno.pid, ppid: deno.ppid, exit: (code) => deno.exit(code) }, true) ??
      processIO();
  }
  const p = g().process;
  const bun = typeof g().Bun === "object" && p !== undefined;
  return (bun && socketIO({ pid: p.pid, ppid: p.ppid, exit: (code) => p.exit(code) }, false)) ||
    processIO();
}
