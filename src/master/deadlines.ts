/**
 * How long the supervisor waits for each thing: a worker to be ready, a
 * stopping worker to go before SIGKILL, the services to start, a second look
 * at a shared port. Every one of them is a time on the master's one clock.
 *
 * @module
 */
import type { SupervisorAction, WorkerRef } from "./supervisor_events.ts";
import type { Slot, WorkerRecord } from "./worker_record.ts";

/**
 * The metrics endpoint starts once every worker is ready, or this long after
 * the start if that comes first: starting it costs the master a few
 * milliseconds of main thread, which the booting workers would otherwise share.
 */
export const SERVICES_DELAY_MS = 250;
/** How long after a first sight of another listener on the app port it is looked at again. */
export const PORT_RECHECK_MS = 250;
/** How long an app's leftover processes, or a process whose isolates all said bye, have after SIGTERM before SIGKILL. */
export const GROUP_KILL_MS = 1_000;
/** A worker killed for silence gets this long after SIGTERM before SIGKILL. */
export const KILL_GRACE_MS = 1_000;
/** A retired worker gets this long past its graceful time before SIGKILL. */
export const RETIRE_GRACE_MS = 1_000;
/** A quick stop: flush now, SIGTERM after this, SIGKILL after QUICK_KILL_MS. */
export const QUICK_TERM_MS = 300;
/** A quick stop: SIGKILL after this for a worker still running. */
export const QUICK_KILL_MS = 1_500;
/** How often SIGKILL is repeated for a process that has not gone yet. */
export const KILL_REPEAT_MS = 1_000;
/** A program that never says hello is taken as booted once it has lived this long. */
export const UNMANAGED_READY_MS = 1_000;
/** A reporter that never says ready (a server it did not wrap) is taken as ready after this. */
export const MANAGED_READY_MS = 10_000;

/**
 * Ends what cannot end by itself: TERM now, and a timer for KILL after
 * {@linkcode GROUP_KILL_MS}. `kill` is a process whose isolates all said bye
 * (they do not exit one by one: the first would end them all); `killGroup` is
 * what an exited worker's app left in its process group.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { endProcess } from "./deadlines.ts";
 * const [term, kill] = endProcess({ id: 1, slot: 1, generation: 1 }, 0, "killGroup");
 * assert.equal(term.type, "signalGroup");
 * assert.deepEqual(kill, { type: "timer", at: 1_000, timer: { name: "killGroup", worker: { id: 1, slot: 1, generation: 1 } } });
 * ```
 */
export function endProcess(
  worker: WorkerRef,
  now: number,
  then: "kill" | "killGroup",
): SupervisorAction[] {
  const at = now + GROUP_KILL_MS;
  return [
    then === "kill"
      ? { type: "signal", worker, signal: "SIGTERM" }
      : { type: "signalGroup", worker, signal: "SIGTERM" },
    { type: "timer", at, timer: { name: then, worker } },
  ];
}

/** What {@linkcode earliestDeadline} looks at. */
export interface DeadlineView {
  /** Every worker process the supervisor holds. */
  live: Iterable<WorkerRecord>;
  /** Whether a worker's silence is judged (a timeout is set and it is ready and speaking). */
  watched: (w: WorkerRecord) => boolean;
  timeoutMs: number;
  /** The master is stopping: only kills are due. */
  stopping: boolean;
  /** The slots whose backoff may end (none while a spawn's outcome is awaited). */
  slots: readonly Slot[];
  /** Whether a roll of the slot is queued. */
  queued: (slot: number) => boolean;
}

/**
 * The earliest time at which the supervisor has something to do: a TERM or
 * KILL due, a worker late to be ready or silent too long, a backoff ending.
 *
 * @example Nothing held, nothing due
 * ```ts
 * import assert from "node:assert/strict";
 * import { earliestDeadline } from "./deadlines.ts";
 * const view = {
 *   live: [],
 *   watched: () => false,
 *   timeoutMs: 0,
 *   stopping: false,
 *   slots: [],
 *   queued: () => false,
 * };
 * assert.equal(earliestDeadline(view), undefined);
 * ```
 */
export function earliestDeadline(view: DeadlineView): number | undefined {
  let at = Infinity;
  const soon = (t: number | undefined) => void (t !== undefined && t < at && (at = t));
  for (const w of view.live) {
    if (w.phase.name === "stopping") {
      soon(w.phase.termAt);
      soon(w.phase.killAt);
    } else if (!view.stopping && w.phase.name === "starting") {
      soon(w.spawnedAt + (w.speech === "silent" ? UNMANAGED_READY_MS : MANAGED_READY_MS));
    } else if (!view.stopping && view.watched(w)) {
      soon(w.lastSeen + view.timeoutMs + 1);
    }
  }
  // A backoff holds back an empty slot, or a queued roll while no other
  // rolls; anything else it holds waits for an event, not for time.
  const rolling = view.slots.some((s) => s.roll !== undefined);
  for (const s of view.slots) {
    if ((!s.current && !s.roll) || (view.queued(s.id) && !rolling)) soon(s.backoffUntil);
  }
  return at === Infinity ? undefined : at;
}

/**
 * The TERMs and KILLs due at `now` for the stopping workers among `live`; a
 * KILL is repeated every {@linkcode KILL_REPEAT_MS} until the process goes.
 *
 * @example A stopping worker past its kill time
 * ```ts
 * import assert from "node:assert/strict";
 * import { dueSignals } from "./deadlines.ts";
 * import { newRecord } from "./worker_record.ts";
 * const w = newRecord({ id: 1, slot: 1, generation: 1 }, 0);
 * w.phase = { name: "stopping", reason: "stop", killAt: 100 };
 * assert.deepEqual(dueSignals([w], 100).map((a) => a.type === "signal" && a.signal), ["SIGKILL"]);
 * assert.equal(w.phase.killAt, 1_100);
 * ```
 */
export function dueSignals(live: Iterable<WorkerRecord>, now: number): SupervisorAction[] {
  const out: SupervisorAction[] = [];
  for (const w of live) {
    if (w.phase.name !== "stopping") continue;
    if (w.phase.termAt !== undefined && now >= w.phase.termAt) {
      w.phase.termAt = undefined;
      out.push({ type: "signal", worker: w.ref, signal: "SIGTERM" });
    }
    if (now >= w.phase.killAt) {
      w.phase.killAt = now + KILL_REPEAT_MS;
      out.push({ type: "signal", worker: w.ref, signal: "SIGKILL" });
    }
  }
  return out;
}
