/**
 * The callbacks an app registers with the API package's `postFork()` (not
 * the master's `postFork` hook, which runs in the master): kept until the worker is
 * welcomed (at once when standalone), then run once each; one registered
 * later runs on the next tick. A failing callback is logged, never thrown.
 *
 * @module
 */

/**
 * Callbacks that run once per worker, after `welcome`.
 *
 * @example Run the callbacks kept so far, once
 * ```ts
 * import assert from "node:assert/strict";
 * import { AfterWelcomeCallbacks } from "./after_welcome.ts";
 * const callbacks = new AfterWelcomeCallbacks((fn) => queueMicrotask(fn));
 * let calls = 0;
 * assert.equal(callbacks.add(() => void calls++), true);
 * callbacks.run();
 * callbacks.run();
 * assert.deepEqual([calls, callbacks.runs], [1, 1]);
 * ```
 */
export class AfterWelcomeCallbacks {
  #fns: Array<() => void> = [];
  #runs = 0;
  readonly #nextTick: (fn: () => void) => void;

  /** Callbacks registered after the run go through `nextTick`. */
  constructor(nextTick: (fn: () => void) => void) {
    this.#nextTick = nextTick;
  }

  /** Times the callbacks were run (0 or 1). */
  get runs(): number {
    return this.#runs;
  }

  /** Keeps `fn` for the run (true), or, the run being over, calls it on the next tick (false). */
  add(fn: () => void): boolean {
    if (this.#runs > 0) {
      this.#nextTick(() => _call(fn));
      return false;
    }
    this.#fns.push(fn);
    return true;
  }

  /** Runs the callbacks kept, once. */
  run(): void {
    if (this.#fns.length === 0 && this.#runs > 0) return;
    this.#runs = 1;
    const fns = this.#fns;
    this.#fns = [];
    for (const fn of fns) _call(fn);
  }
}

function _call(fn: () => void): void {
  try {
    const r = fn() as unknown;
    if (r instanceof Promise) {
      r.catch((e) => console.error("forklift: postFork callback failed:", e));
    }
  } catch (error) {
    console.error("forklift: postFork callback failed:", error);
  }
}
