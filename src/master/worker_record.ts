/**
 * The supervisor's records: one per worker it started, one per slot it keeps.
 * Only the supervisor changes them.
 *
 * @module
 */
import { History } from "./history.ts";
import type { MemoryBackoff, MemoryWatch } from "./memory_policy.ts";
import type { BackoffState } from "./restart_policy.ts";
import type {
  RestartReason,
  RollReason,
  Speech,
  Transition,
  WorkerPhase,
  WorkerRef,
  WorkerView,
} from "./supervisor_events.ts";

/**
 * How many transitions a worker keeps for `/status`: a life has about five,
 * and a worker that repeats a message must not make the list grow.
 */
export const TRANSITIONS = 32;

/** A worker the supervisor started, until it is gone. */
export interface WorkerRecord {
  ref: WorkerRef;
  spawnedAt: number;
  phase: WorkerPhase;
  speech: Speech;
  lastSeen: number;
  requests: number;
  requestLimit: number;
  isolates: number;
  readyAt?: number;
  transitions: History<Transition>;
  /** Counted once its process exists (a spawn that throws replaces nothing). */
  countAs?: RestartReason;
  everReady: boolean;
  /** Its memory as `max_memory` judges it, from its first sample once ready. */
  memory?: MemoryWatch;
}

/** A place for one worker, kept across its generations. */
export interface Slot extends BackoffState {
  id: number;
  current?: WorkerRecord;
  /** A rolling replacement under way: the next generation and why. */
  roll?: { next: WorkerRecord; reason: RollReason };
  spawns: number;
  restarts: number;
  /** Consecutive boot failures, for the backoff. */
  bootFailures: number;
  /** Crashes in a row (each within CRASH_WINDOW_MS of the last), for the backoff. */
  crashes: number;
  lastCrashAt: number;
  /** No respawn, and no roll, before this time. */
  backoffUntil: number;
  /** The reason to count when the slot is next filled. */
  pendingReason?: RestartReason;
  /** Set by its first memory roll. */
  memoryBackoff?: MemoryBackoff;
}

/**
 * An empty slot.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { newSlot } from "./worker_record.ts";
 * assert.equal(newSlot(2).spawns, 0);
 * ```
 */
export function newSlot(id: number): Slot {
  return {
    id,
    spawns: 0,
    restarts: 0,
    bootFailures: 0,
    crashes: 0,
    lastCrashAt: -Infinity,
    backoffUntil: 0,
  };
}

/**
 * A worker whose spawn is being asked for at `now`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { newRecord } from "./worker_record.ts";
 * const w = newRecord({ id: 1, slot: 1, generation: 1 }, 0);
 * assert.deepEqual(w.transitions.toArray(), [{ state: "starting", at: 0 }]);
 * ```
 */
export function newRecord(ref: WorkerRef, now: number, countAs?: RestartReason): WorkerRecord {
  const w: WorkerRecord = {
    ref,
    spawnedAt: now,
    phase: { name: "starting" },
    speech: "silent",
    lastSeen: now,
    requests: 0,
    requestLimit: 0,
    isolates: 1,
    transitions: new History(TRANSITIONS),
    countAs,
    everReady: false,
  };
  w.transitions.push({ state: "starting", at: now });
  return w;
}

/**
 * A worker as `/status` shows it, with its slot's restart count.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { newRecord, viewOf } from "./worker_record.ts";
 * const view = viewOf(newRecord({ id: 1, slot: 1, generation: 1 }, 0), 2);
 * assert.equal(view.phase, "starting");
 * assert.equal(view.restarts, 2);
 * ```
 */
export function viewOf(w: WorkerRecord, restarts: number): WorkerView {
  return {
    worker: w.ref,
    phase: w.phase.name,
    reason: w.phase.name === "stopping" ? w.phase.reason : undefined,
    restarts,
    readyAt: w.readyAt,
    transitions: w.transitions.toArray(),
  };
}
