/**
 * The clock port: the arbiter's only source of time and of timers, so that a
 * test can drive it by hand.
 *
 * @module
 */

/** Time and timers. */
export interface Clock {
  /** A monotonic time in ms. */
  now(): number;
  /** Calls `fn` after `ms`; returns a function that cancels it. */
  after(ms: number, fn: () => void): () => void;
}

/**
 * The real clock: `performance.now()` and `setTimeout`.
 *
 * @example
 * ```ts
 * import { systemClock } from "./clock.ts";
 * const cancel = systemClock.after(10, () => console.log("later"));
 * cancel();
 * ```
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};
