/**
 * When a worker over `max_memory` is rolled: only a ready worker is judged,
 * on the master's samples of its process group; it must be over the limit on
 * {@linkcode MEMORY_SAMPLES} samples in a row; and a slot rolled for memory is
 * not rolled for memory again within a back-off that doubles while each
 * replacement is over the limit as soon as it is judged. An app that needs
 * more than the limit from its start is therefore rolled ever more rarely,
 * never in a loop.
 *
 * @module
 */

/**
 * Samples in a row over the limit before a roll: one sample may catch a
 * short peak (a large response being built), two apart by a harvest interval
 * say the memory stays there.
 */
export const MEMORY_SAMPLES = 2;
/** The first back-off after a memory roll of a slot. */
export const MEMORY_BACKOFF_MS = 30_000;
/** The longest back-off: an app over the limit from its start is rolled this often at most. */
export const MAX_MEMORY_BACKOFF_MS = 600_000;

/** What the policy keeps of one worker. */
export interface MemoryWatch {
  /** Samples in a row over the limit. */
  over: number;
  /** It was found over the limit within its slot's back-off (and that was said). */
  held: boolean;
}

/** What the policy keeps of one slot. */
export interface MemoryBackoff {
  /** No memory roll of the slot before this time. */
  until: number;
  /** The back-off the next roll starts, should its worker be held. */
  ms: number;
}

/** What to do about one sample. */
export type MemoryVerdict =
  | { action: "none" }
  | { action: "roll" }
  /** Over the limit within the back-off: said once per worker; rolled once `holdMs` is over. */
  | { action: "hold"; holdMs: number };

/**
 * Judges one sample of a ready worker's memory at `now`, and moves the
 * worker's watch and the slot's back-off.
 *
 * @example A leak is rolled on its second sample over the limit; its replacement, over at once, waits
 * ```ts
 * import assert from "node:assert/strict";
 * import { judgeMemory, MEMORY_BACKOFF_MS } from "./memory_policy.ts";
 * const slot: { memoryBackoff?: { until: number; ms: number } } = {};
 * const old = { over: 0, held: false };
 * assert.equal(judgeMemory(old, slot, 600, 500, 0).action, "none");
 * assert.equal(judgeMemory(old, slot, 610, 500, 1000).action, "roll");
 * const fresh = { over: 0, held: false };
 * judgeMemory(fresh, slot, 600, 500, 3000);
 * assert.deepEqual(judgeMemory(fresh, slot, 600, 500, 4000), {
 *   action: "hold",
 *   holdMs: 1000 + MEMORY_BACKOFF_MS - 4000,
 * });
 * ```
 */
export function judgeMemory(
  watch: MemoryWatch,
  slot: { memoryBackoff?: MemoryBackoff },
  bytes: number,
  limit: number,
  now: number,
): MemoryVerdict {
  if (bytes <= limit) {
    watch.over = 0;
    return { action: "none" };
  }
  if (++watch.over < MEMORY_SAMPLES) return { action: "none" };
  const backoff = slot.memoryBackoff;
  if (backoff !== undefined && now < backoff.until) {
    if (watch.held) return { action: "none" };
    watch.held = true;
    backoff.ms = Math.min(backoff.ms * 2, MAX_MEMORY_BACKOFF_MS);
    return { action: "hold", holdMs: backoff.until - now };
  }
  // A worker that stayed under the limit past the back-off brings it back to its start.
  const ms = watch.held && backoff !== undefined ? backoff.ms : MEMORY_BACKOFF_MS;
  slot.memoryBackoff = { until: now + ms, ms };
  return { action: "roll" };
}
