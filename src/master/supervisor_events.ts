/**
 * What the supervisor and the arbiter say to each other: the events that
 * happen to the supervision (each with its time on the clock), the actions
 * the supervisor answers with, the notices it asks to log, and its view of
 * each worker for `/status`.
 *
 * @module
 */
import type { Config } from "../config/config.ts";
import type { SignalName } from "../runtime/runtime.ts";
import type { Listener } from "./port_owners.ts";
import { heartbeatMs } from "../config/derived.ts";

/** Why a worker was replaced, as `forklift_worker_restarts_total{reason}` counts it. */
export type RestartReason =
  | "crash"
  | "timeout"
  | "reload"
  | "max_requests"
  | "memory"
  | "scale";
/** Every {@linkcode RestartReason}, in the order the exposition lists them. */
export const RESTART_REASONS: readonly RestartReason[] = [
  "crash",
  "timeout",
  "reload",
  "max_requests",
  "memory",
  "scale",
];
/**
 * A count of zero for every restart reason.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { noRestarts } from "./supervisor_events.ts";
 * assert.equal(noRestarts().crash, 0);
 * ```
 */
export function noRestarts(): Record<RestartReason, number> {
  return Object.fromEntries(RESTART_REASONS.map((r) => [r, 0])) as Record<RestartReason, number>;
}
/** Why the master asked a worker to stop. */
export type StopReason = Exclude<RestartReason, "crash"> | "stop";
/** Why a slot rolls to a new generation while the old one serves. */
export type RollReason = "reload" | "max_requests" | "memory";

/** A worker as the supervisor names it: a unique id, its slot and generation. */
export interface WorkerRef {
  readonly id: number;
  readonly slot: number;
  readonly generation: number;
}

/** What the policy needs of the settings. */
export interface SupervisorConfig {
  workers: number;
  once: boolean;
  /** Heartbeat timeout in ms; 0 turns it off. */
  timeoutMs: number;
  gracefulMs: number;
  /**
   * How often each worker is asked to send a heartbeat, in ms (0: never): the
   * supervisor that judges the timeout tells every worker it spawns.
   */
  heartbeatMs: number;
  /**
   * Resident memory, in bytes, above which a worker's process group is
   * rolled (`max_memory`); 0 or absent turns it off.
   */
  maxMemoryBytes?: number;
}

/** Where a worker is in its life; each state holds what only it needs. */
export type WorkerPhase =
  | { name: "starting" }
  | { name: "ready"; at: number }
  | {
    name: "stopping";
    reason: StopReason;
    /** When a quick stop sends SIGTERM. */
    termAt?: number;
    /** When SIGKILL goes out (again) unless the worker has exited. */
    killAt: number;
  };

/** Whether a worker speaks the protocol: only those can be judged silent or asked to drain. */
export type Speech = "silent" | "expected" | "speaking";

/** Where the master is in its life. */
export type MasterPhase =
  | { name: "booting" }
  | { name: "running" }
  | { name: "stopping"; mode: "graceful" | "quick" }
  | { name: "exited"; code: number };

/** A time the supervisor asked to be told of, with what it was waiting for. */
export type Timer =
  /** The metrics endpoint's latest start, should the workers take long to be ready. */
  | { name: "services" }
  /** A second look at the app's port, found served by another program. */
  | { name: "portRecheck" }
  /** SIGKILL for a process whose isolates all said bye, should it still run. */
  | { name: "kill"; worker: WorkerRef }
  /** SIGKILL for what an exited worker's app left in its process group. */
  | { name: "killGroup"; worker: WorkerRef };

/** Another program listening on the workers' port, as the port check found it. */
export interface PortShare {
  port: number;
  listeners: Array<Pick<Listener, "address" | "family" | "uid">>;
}

/** What happens to the supervisor; `now` is a monotonic time in ms. */
export type SupervisorEvent =
  | { type: "start"; now: number }
  | {
    type: "spawned";
    workerId: number;
    now: number;
    expectsHello: boolean;
    requestLimit: number;
    /** Reporters in the process: one, or one per isolate (`deno serve --parallel`). */
    isolates?: number;
  }
  | { type: "spawnFailed"; workerId: number; now: number; error: string }
  | { type: "hello"; workerId: number; now: number }
  | { type: "ready"; workerId: number; now: number }
  /** Any valid message; `requests` when it reported its request count. */
  | { type: "seen"; workerId: number; now: number; requests?: number }
  /** The resident memory of its process group, as the master sampled it. */
  | { type: "memory"; workerId: number; now: number; bytes: number }
  /** Each of its isolates handed over its last harvest and said bye. */
  | { type: "bye"; workerId: number; now: number }
  /** A `timer` action's time came. */
  | { type: "due"; timer: Timer; now: number }
  /** What a `checkPort` action found: `shared` when another program listens on the app's port. */
  | { type: "portChecked"; shared?: PortShare; now: number }
  | { type: "exited"; workerId: number; now: number; code: number | null; signal: string | null }
  | { type: "signal"; signal: SignalName; now: number }
  /** The configuration a `reload` action asked for, read and valid. */
  | { type: "reloaded"; config: SupervisorConfig; now: number }
  /** The master cannot go on (its metrics endpoint failed): stop quickly with `code`. */
  | { type: "fail"; code: number; now: number }
  | { type: "tick"; now: number };

/** How a worker that never became ready ended. */
export type BootFailureCause =
  | { exit: { code: number | null; signal: string | null } }
  | { spawn: string };

/**
 * The exit code and signal of a boot failure's cause (none for a spawn that threw).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exitOf } from "./supervisor_events.ts";
 * assert.deepEqual(exitOf({ spawn: "EAGAIN" }), { code: null, signal: null });
 * ```
 */
export function exitOf(cause: BootFailureCause): { code: number | null; signal: string | null } {
  return "exit" in cause ? cause.exit : { code: null, signal: null };
}

/** What the master should tell its log; the arbiter words it. */
export type Notice =
  | { kind: "ready"; worker: WorkerRef; afterMs: number }
  | { kind: "noReadyReport"; worker: WorkerRef; afterMs: number }
  | { kind: "booted"; workers: number }
  | {
    kind: "exited";
    worker: WorkerRef;
    code: number | null;
    signal: string | null;
    reason?: string;
  }
  | { kind: "programExited"; worker: WorkerRef; code: number | null; signal: string | null }
  | {
    kind: "bootFailed";
    worker: WorkerRef;
    cause: BootFailureCause;
    then:
      | { action: "stop" }
      | { action: "keep"; generation: number | undefined }
      | { action: "giveUp"; failures: number }
      | { action: "respawn"; delayMs: number };
  }
  | {
    kind: "crashed";
    worker: WorkerRef;
    code: number | null;
    signal: string | null;
    delayMs: number;
  }
  | { kind: "silent"; worker: WorkerRef; silentMs: number }
  | { kind: "recycling"; worker: WorkerRef; requests: number; limit: number }
  /** Over `max_memory` for long enough: rolled. */
  | { kind: "overMemory"; worker: WorkerRef; bytes: number; limit: number }
  /**
   * Over `max_memory` within the back-off of its slot's last memory roll:
   * the app needs more than the limit from its start; rolled no sooner than `holdMs` from now.
   */
  | { kind: "overMemoryAtStart"; worker: WorkerRef; bytes: number; limit: number; holdMs: number }
  | { kind: "scaled"; workers: number }
  | { kind: "portShared"; share: PortShare }
  | { kind: "atFloor" }
  | { kind: "reloading"; workers: number }
  | { kind: "reloaded"; workers: number }
  | { kind: "stopping"; mode: "graceful" | "quick"; graceMs: number };

/** What the arbiter must do. */
export type SupervisorAction =
  /** Start a worker that sends a heartbeat every `heartbeatMs` (0: never). */
  | { type: "spawn"; worker: WorkerRef; heartbeatMs: number }
  /** Ask a worker that speaks the protocol to drain and exit (SIGTERM if it cannot be asked). */
  | { type: "shutdown"; worker: WorkerRef; gracefulMs: number }
  /** Ask for a final harvest now. */
  | { type: "flush"; worker: WorkerRef }
  | { type: "signal"; worker: WorkerRef; signal: "SIGTERM" | "SIGKILL" }
  /** Signal what the worker's app left in its process group (the worker is gone). */
  | { type: "signalGroup"; worker: WorkerRef; signal: "SIGTERM" | "SIGKILL" }
  /** Come back with a `due` event for `timer` at `at` on the clock. */
  | { type: "timer"; at: number; timer: Timer }
  /** Look for another program listening on the workers' port; answer with `portChecked`. */
  | { type: "checkPort" }
  /** Start the metrics endpoint and the OTLP export. */
  | { type: "startServices" }
  /** The workers serve alone on their port: run `whenReady`, tidy up after the boot. */
  | { type: "whenReady" }
  /** The worker is gone: its gauges go (its counts stay in the totals). */
  | { type: "forget"; worker: WorkerRef }
  /** Re-read the configuration and answer with a `reloaded` event. */
  | { type: "reload" }
  | { type: "reopenLogs" }
  | { type: "notify"; notice: Notice }
  | { type: "exit"; code: number };

/** A change in a worker's life (its phases, and its hello and bye), at a time on the clock. */
export interface Transition {
  state: string;
  at: number;
}

/** A worker in a `/status` listing. */
export interface WorkerView {
  worker: WorkerRef;
  phase: WorkerPhase["name"];
  /** Why it was asked to stop, once it was. */
  reason?: StopReason;
  /** Times its slot has been respawned. */
  restarts: number;
  /** When it became ready, on the clock. */
  readyAt?: number;
  /** Its latest transitions, oldest first. */
  transitions: Transition[];
}

/**
 * The policy's view of the settings.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { typedConfig } from "../config/config.ts";
 * import { supervisorConfig } from "./supervisor_events.ts";
 * const c = supervisorConfig(typedConfig({ workers: 2, graceful_timeout: 5 }));
 * assert.ok(c.gracefulMs === 5000);
 * ```
 */
export function supervisorConfig(
  config: Pick<
    Config,
    "workers" | "once" | "timeoutMs" | "gracefulTimeoutMs" | "harvestIntervalMs" | "maxMemory"
  >,
): SupervisorConfig {
  return {
    workers: config.workers,
    once: config.once,
    timeoutMs: config.timeoutMs,
    gracefulMs: config.gracefulTimeoutMs,
    heartbeatMs: heartbeatMs(config),
    maxMemoryBytes: config.maxMemory,
  };
}
