/**
 * Starts worker processes with a private JSON IPC channel that a worker sees
 * as `process.send` / `process.on("message")`, on either runtime: Bun's own
 * `Bun.spawn` (its `node:child_process` costs ~10 ms on first use, which a
 * master that starts or replaces workers cannot afford), and Deno's
 * `node:child_process` (Deno has no other IPC-capable spawn).
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

import process from "node:process";
import type { ChannelPeer, ChannelServer } from "./channel_server.ts";

/** What the master hears from a worker process. */
export interface WorkerProcessEvents {
  /** A chunk of the worker's stdout or stderr. */
  output(stream: "stdout" | "stderr", chunk: Uint8Array): void;
  /** A message from the worker, and the stream it came on (0 but for several isolates). */
  message(message: unknown, stream: number): void;
  /** The process ended (once), after its output was drained where possible. */
  exit(code: number | null, signal: string | null): void;
}

/** Options of {@linkcode spawnWorkerProcess}. */
export interface SpawnOptions {
  /** The complete environment of the child. */
  env: Record<string, string>;
  cwd: string;
  /** Give the child the master's stdin (`--once`), else none. */
  inheritStdin?: boolean;
  /** Start the child in its own process group. */
  detached?: boolean;
  /**
   * Talk over this socket channel (the child connects with `token`, once per
   * isolate: `isolates` times) instead of a Node IPC channel.
   */
  channel?: { server: ChannelServer; token: string; isolates?: number };
  /**
   * Told once when the worker leaves {@linkcode MAX_UNSENT_MESSAGES} messages
   * of its Node IPC channel unread and the master closes the channel.
   */
  onCutOff?: (unsent: number) => void;
}

/**
 * Messages the master lets wait on a Node IPC channel whose worker does not
 * read: the runtime queues them without limit otherwise. A worker is sent a
 * welcome, one ack per harvest and stop requests, each answered or read at
 * once by an honest one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MAX_UNSENT_MESSAGES } from "./spawn.ts";
 * assert.ok(MAX_UNSENT_MESSAGES === 4096);
 * ```
 */
export const MAX_UNSENT_MESSAGES = 4096;

/** The master's end of a worker process. */
export interface WorkerProcess {
  readonly pid: number | undefined;
  /** True while the IPC channel is open. */
  readonly connected: boolean;
  /** Sends a message to one stream, or to all; false when the channel is gone. */
  send(message: unknown, stream?: number): boolean;
  /**
   * Sends a signal (by pid, never by name): to the worker's whole process
   * group when it has its own (`detached`), so the app's own children get it too.
   */
  kill(signal: string): void;
  /** Signals what is left of the worker's own process group (after it exited); no-op without one. */
  killGroup(signal: string): void;
}

/** How long an exit may wait for its output to drain (a grandchild may hold the pipes). */
const DRAIN_MS = 100;

let childProcess: typeof import("node:child_process") | undefined;

// Workers this process started that the runtime has not yet waited for: their
// exit status is the runtime's to collect, never a zombie reaper's.
const unreaped = new Set<number>();

/**
 * Whether `pid` is a worker started here whose exit the runtime has not
 * collected yet.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isUnreapedWorker } from "./spawn.ts";
 * assert.ok(isUnreapedWorker(1) === false);
 * ```
 */
export function isUnreapedWorker(pid: number): boolean {
  return unreaped.has(pid);
}

/**
 * Loads what spawning needs on this runtime; call once before the first
 * {@linkcode spawnWorkerProcess}. A no-op on Bun.
 *
 * @example
 * ```ts ignore
 * import { prepareSpawn } from "./spawn.ts";
 * await prepareSpawn();
 * ```
 */
export async function prepareSpawn(): Promise<void> {
  if ((globalThis as any).Bun === undefined) childProcess ??= await import("node:child_process");
}

function spawnBun(argv: string[], options: SpawnOptions, on: WorkerProcessEvents): WorkerProcess {
  let connected = true;
  const peer = openChannel(options, on);
  let proc: any;
  try {
    proc = (globalThis as any).Bun.spawn(argv, {
      cwd: options.cwd,
      env: options.env,
      stdio: [options.inheritStdin ? "inherit" : "ignore", "pipe", "pipe"],
      serialization: "json",
      detached: options.detached ?? false,
      ...(options.channel ? {} : {
        ipc: (message: unknown) => on.message(message, 0),
        onDisconnect: () => void (connected = false),
      }),
    });
  } catch (error) {
    peer?.close();
    throw error;
  }
  const pump = async (stream: ReadableStream<Uint8Array>, name: "stdout" | "stderr") => {
    const reader = stream.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        on.output(name, value);
      }
    } catch {
      // The pipe broke: the process is gone.
    }
  };
  const drained = Promise.all([pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr")]);
  unreaped.add(proc.pid);
  proc.exited.then(async () => {
    unreaped.delete(proc.pid);
    connected = false;
    peer?.close();
    await Promise.race([drained, new Promise((r) => setTimeout(r, DRAIN_MS))]);
    on.exit(proc.signalCode ? null : proc.exitCode, proc.signalCode ?? null);
  });
  const link = peer ?? ipcLink(
    () => connected && !proc.killed,
    (message, sent) => proc.send(message, sent),
    () => proc.disconnect(),
    options.onCutOff,
  );
  return workerProcess(proc.pid, link, (signal) => proc.kill(signal), options.detached ?? false);
}

function spawnNode(argv: string[], options: SpawnOptions, on: WorkerProcessEvents): WorkerProcess {
  if (childProcess === undefined) throw new Error("prepareSpawn() was not awaited");
  const peer = openChannel(options, on);
  let child;
  try {
    child = childProcess.spawn(argv[0], argv.slice(1), {
      env: options.env,
      cwd: options.cwd,
      stdio: [
        options.inheritStdin ? "inherit" : "ignore",
        "pipe",
        "pipe",
        ...(options.channel ? [] : ["ipc" as const]),
      ],
      serialization: "json",
      detached: options.detached ?? false,
    });
  } catch (error) {
    peer?.close();
    throw error;
  }
  const pid = child.pid;
  if (pid !== undefined) unreaped.add(pid);
  let ended = false;
  const end = (code: number | null, signal: string | null) => {
    if (pid !== undefined) unreaped.delete(pid);
    if (ended) return;
    ended = true;
    peer?.close();
    on.exit(code, signal);
  };
  child.stdout?.on("data", (d: Uint8Array) => on.output("stdout", d));
  child.stderr?.on("data", (d: Uint8Array) => on.output("stderr", d));
  child.on("message", (m: unknown) => on.message(m, 0));
  // 'close' waits for stdio to end, so the last lines are written first. Deno
  // never emits it for a child killed by a signal after IPC traffic, so an
  // 'exit' without a 'close' soon after counts as the end too.
  child.on("close", (code, signal) => end(code, signal));
  child.on("exit", (code, signal) => {
    if (pid !== undefined) unreaped.delete(pid);
    setTimeout(() => end(code, signal), DRAIN_MS);
  });
  child.on("error", () => {
    // A spawn error also ends in 'close'.
  });
  const link = peer ?? ipcLink(
    () => child.connected === true,
    (message, sent) => child.send(message as any, sent),
    () => child.disconnect(),
    options.onCutOff,
  );
  return workerProcess(
    child.pid,
    link,
    (signal) => child.kill(signal as any),
    options.detached ?? false,
  );
}

function openChannel(options: SpawnOptions, on: WorkerProcessEvents): ChannelPeer | undefined {
  const c = options.channel;
  return c === undefined
    ? undefined
    : c.server.expect(c.token, { message: on.message }, c.isolates ?? 1);
}

/** The channel half of a worker: a socket channel's peer or a Node IPC channel. */
type Link = Pick<ChannelPeer, "connected" | "send">;

/**
 * A Node IPC channel as a {@linkcode Link}: a failed send is false, never a
 * throw. The runtime calls `sent` once a message has left; past
 * {@linkcode MAX_UNSENT_MESSAGES} that have not, the channel is closed.
 */
function ipcLink(
  connected: () => boolean,
  send: (message: unknown, sent: () => void) => void,
  disconnect: () => void,
  onCutOff: ((unsent: number) => void) | undefined,
): Link {
  let unsent = 0;
  let cut = false;
  const left = () => void unsent--;
  return {
    get connected() {
      return !cut && connected();
    },
    send(message) {
      if (cut || !connected()) return false;
      if (unsent >= MAX_UNSENT_MESSAGES) {
        cut = true;
        try {
          disconnect();
        } catch { /* already gone */ }
        onCutOff?.(unsent);
        return false;
      }
      unsent++;
      try {
        send(message, left);
        return true;
      } catch {
        unsent--;
        return false;
      }
    },
  };
}

function workerProcess(
  pid: number | undefined,
  link: Link,
  kill: (signal: string) => void,
  group: boolean,
): WorkerProcess {
  const killGroup = (signal: string): boolean => {
    if (!group || pid === undefined) return false;
    try {
      process.kill(-pid, signal);
      return true;
    } catch {
      return false;
    }
  };
  return {
    pid,
    get connected() {
      return link.connected;
    },
    send: (message, stream) => link.send(message, stream),
    kill(signal) {
      if (killGroup(signal)) return;
      try {
        kill(signal);
      } catch {
        // Already gone.
      }
    },
    killGroup: (signal) => void killGroup(signal),
  };
}

/**
 * Spawns `argv` with piped stdout/stderr and a channel: a Node IPC channel,
 * or the socket channel named in `options.channel`.
 *
 * @example Start a worker
 * ```ts ignore
 * import { prepareSpawn, spawnWorkerProcess } from "./spawn.ts";
 * await prepareSpawn();
 * const worker = spawnWorkerProcess(["/usr/bin/deno", "run", "server.ts"], { env: {}, cwd: "." }, {
 *   output: (stream, chunk) => console.log(stream, chunk.length),
 *   message: (m, stream) => console.log(stream, m),
 *   exit: (code, signal) => console.log("exited", code, signal),
 * });
 * ```
 */
export function spawnWorkerProcess(
  argv: string[],
  options: SpawnOptions,
  events: WorkerProcessEvents,
): WorkerProcess {
  return (globalThis as any).Bun !== undefined
    ? spawnBun(argv, options, events)
    : spawnNode(argv, options, events);
}
