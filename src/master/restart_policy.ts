/**
 * The restart policy: how long a slot waits before it is filled again after
 * crashes or boot failures in a row, and when a booted master gives up.
 *
 * @module
 */

import { backoff } from "../protocol/backoff.ts";

/** The longest wait before a respawn. */
export const MAX_BACKOFF_MS = 5_000;
/** From 200 ms, doubling to the cap; no spread, so the policy stays a pure function of its clock. */
const RESPAWN_BACKOFF = { firstMs: 200, maxMs: MAX_BACKOFF_MS } as const;
/** Boot failures in a row, in one slot of a booted master, before it gives up. */
export const MAX_BOOT_FAILURES = 5;
/** Crashes further apart than this do not add up. */
export const CRASH_WINDOW_MS = 10_000;

/**
 * The respawn delay after `n` failures in a row: none for the first, then
 * doubling from 200 ms to a cap of 5 s.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backoffDelay } from "./restart_policy.ts";
 * assert.ok([0, 1, 2, 3, 9].map(backoffDelay).join() === "0,200,400,800,5000");
 * ```
 */
export function backoffDelay(n: number): number {
  return n <= 0 ? 0 : backoff(n - 1, RESPAWN_BACKOFF);
}

/** What the backoff needs to know of a slot, and moves. */
export interface BackoffState {
  /** Consecutive boot failures. */
  bootFailures: number;
  /** Crashes in a row (each within CRASH_WINDOW_MS of the last). */
  crashes: number;
  lastCrashAt: number;
  /** No respawn, and no roll, before this time. */
  backoffUntil: number;
}

/**
 * Delays a slot's respawn after a crash or boot failure at `now`: none for a
 * first crash (a replacement should answer as fast as the runtime starts),
 * then doubling up to a cap while crashes or boot failures follow each other.
 * Returns the delay.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backOff } from "./restart_policy.ts";
 * const slot = { bootFailures: 0, crashes: 0, lastCrashAt: -Infinity, backoffUntil: 0 };
 * assert.equal(backOff(slot, 1_000), 0);
 * assert.equal(backOff(slot, 2_000), 200);
 * assert.equal(slot.backoffUntil, 2_200);
 * ```
 */
export function backOff(slot: BackoffState, now: number): number {
  slot.crashes = now - slot.lastCrashAt < CRASH_WINDOW_MS ? slot.crashes + 1 : 1;
  slot.lastCrashAt = now;
  const delay = backoffDelay(Math.max(slot.crashes - 1, slot.bootFailures));
  slot.backoffUntil = now + delay;
  return delay;
}

/** What follows a worker's failure to boot in a slot of a booted master. */
export type AfterBootFailure =
  | { action: "keep"; generation: number | undefined }
  | { action: "giveUp"; failures: number }
  | { action: "respawn"; delayMs: number };

/**
 * Counts a boot failure in a slot at `now` and says what follows. A new
 * generation that cannot boot leaves the old one (`generation`) serving, and
 * its recycle is retried only after a backoff, so broken code on disk is no
 * spawn loop; {@linkcode MAX_BOOT_FAILURES} in a row give up; otherwise the
 * slot is respawned after the backoff.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { afterBootFailure } from "./restart_policy.ts";
 * const slot = { bootFailures: 0, crashes: 0, lastCrashAt: -Infinity, backoffUntil: 0 };
 * assert.deepEqual(afterBootFailure(slot, true, 1, 0), { action: "keep", generation: 1 });
 * assert.equal(slot.backoffUntil, 200);
 * ```
 */
export function afterBootFailure(
  slot: BackoffState,
  wasNext: boolean,
  generation: number | undefined,
  now: number,
): AfterBootFailure {
  slot.bootFailures++;
  if (wasNext) {
    slot.backoffUntil = now + backoffDelay(slot.bootFailures);
    return { action: "keep", generation };
  }
  if (slot.bootFailures >= MAX_BOOT_FAILURES) {
    return { action: "giveUp", failures: slot.bootFailures };
  }
  return { action: "respawn", delayMs: backOff(slot, now) };
}
