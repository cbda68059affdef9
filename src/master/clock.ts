/**
 * The clock port: the time the arbiter stamps events with and the timers its
 * loop waits on, so that a test can drive supervision by hand. (Worker
 * handles keep their own wall-clock times, for `/status` only.)
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
