/**
 * The reporter's host: the process it lives in (its channel to the master,
 * timers, clock, exit and server hook) behind one interface, so tests can
 * play both sides without a real channel or real time.
 *
 * @module
 */

import { afterDelay, cancelTimer, repeatEvery } from "../runtime/timers.ts";
import type { WorkerMessage } from "../protocol/messages.ts";
import { MASTER_PID_ENV } from "../protocol/env.ts";
import { runtimeId } from "../runtime/detect.ts";
import { hookServe } from "../runtime/serve.ts";
import { type WorkerIO, workerIO } from "../runtime/worker_io.ts";
import { beforeExit } from "../runtime/before_exit.ts";
import type { Reporter } from "./reporter.ts";

/** Handle of a timer, whatever the runtime returns. */
export type TimerHandle = unknown;

/**
 * The process the reporter lives in, as an interface so tests can play both
 * sides without a real channel or real time.
 */
export interface ReporterHost extends Omit<WorkerIO, "send" | "wake"> {
  /** `"deno/2.9.6"`, `"bun/1.4.5"`, … */
  readonly runtime: string;
  /** Sends a message; `done` is called once it left (or failed). */
  send(message: WorkerMessage, done?: (error: unknown) => void): void;
  /** Arms a repeating timer. */
  setInterval(fn: () => void, ms: number): TimerHandle;
  /** Arms a one-shot timer. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /**
   * Arms a one-shot timer that never keeps the process alive, for waits that
   * something else holds it open for, such as a drain's (see `afterDelay`).
   */
  setLooseTimeout(fn: () => void, ms: number): TimerHandle;
  /** Clears a timer of either kind. */
  clearTimer(handle: TimerHandle): void;
  /** Monotonic milliseconds. */
  now(): number;
  /** Installs the server hook: the runtime's own serve function, wrapped. */
  hookServe?(reporter: Reporter): void;
  /** The program runs (a server listens): opens a channel that waited for it. */
  wake?(): void;
  /** Calls `fn` before a normal exit (the event loop ran dry). */
  beforeExit?(fn: () => void): void;
  /**
   * Whether the reporter measures this process's runtime (heap, event-loop
   * delay) under forklift: the real process does; a test host opts in.
   */
  runtimeMetrics?: boolean;
}

/**
 * The host for the real process: its channel to the master from
 * {@linkcode workerIO}, the harvest timer from {@linkcode repeatEvery}, and
 * the global one-shot timers (not `node:timers`, which costs milliseconds to
 * load in Bun).
 *
 * @example Build the real host
 * ```ts ignore
 * import { processHost } from "./host.ts";
 * import { Reporter } from "./reporter.ts";
 * const reporter = new Reporter(processHost());
 * ```
 */
export function processHost(): ReporterHost {
  const io = workerIO();
  return {
    pid: io.pid,
    ppid: io.ppid,
    runtime: runtimeId(),
    env: io.env,
    connected: io.connected,
    send: io.send,
    onMessage: io.onMessage,
    onDisconnect: io.onDisconnect,
    refChannel: io.refChannel,
    setInterval: repeatEvery,
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    setLooseTimeout: afterDelay,
    clearTimer: cancelTimer,
    nextTick: io.nextTick,
    now: () => performance.now(),
    exit: io.exit,
    isolates: io.isolates,
    wake: io.wake,
    hookServe: (reporter) => void hookServe(reporter.serveHooks()),
    beforeExit,
    runtimeMetrics: true,
  };
}

/**
 * Whether this process was started by a master that is gone: it has a
 * channel and the environment names a master, but init (pid 1) adopted it.
 * (An app's own subprocess inherits the environment too, with the app as its parent.)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { masterGone } from "./host.ts";
 * const env = (name: string) => name === "FORKLIFT_MASTER_PID" ? "4000" : undefined;
 * assert.equal(masterGone({ connected: () => true, ppid: 1, env }), true);
 * ```
 */
export function masterGone(host: Pick<ReporterHost, "connected" | "ppid" | "env">): boolean {
  if (!host.connected() || host.ppid !== 1) return false;
  const master = host.env(MASTER_PID_ENV);
  return master !== undefined && master !== "" && master !== "1";
}

/**
 * Whether this process is a forklift worker: env names our parent and a channel exists.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { underForklift } from "./host.ts";
 * const env = (name: string) => name === "FORKLIFT_MASTER_PID" ? "4000" : undefined;
 * assert.equal(underForklift({ connected: () => true, ppid: 4000, env }), true);
 * ```
 */
export function underForklift(host: Pick<ReporterHost, "connected" | "ppid" | "env">): boolean {
  if (!host.connected()) return false; // no channel: never touch env
  const master = host.env(MASTER_PID_ENV);
  return master !== undefined && master !== "" && Number(master) === host.ppid;
}
