/**
 * The one way forklift spaces its retries: a delay that grows by a factor
 * from a first value up to a cap, optionally spread at random so that many
 * processes retrying the same thing do not retry in step. Pure: callers own
 * their timers, their clock and their count of attempts.
 *
 * @module
 */

/** How the delays of one kind of retry grow. */
export interface BackoffPolicy {
  /** Delay before the first retry, in ms. */
  firstMs: number;
  /** Longest delay, in ms, however many retries came before. */
  maxMs: number;
  /** What each delay is multiplied by to give the next; 2 when not given. */
  factor?: number;
  /**
   * Spread, as a fraction of the delay: 0.2 gives a delay anywhere from 80% to
   * 120% of the base. 0 (the default) gives the base exactly.
   */
  jitter?: number;
}

/**
 * The delay in ms before retry `attempt` (0 for the first retry) under
 * `policy`: `firstMs × factor^attempt`, capped at `maxMs`, spread by
 * `jitter` with `random` (a number in [0, 1)), rounded to whole ms.
 *
 * @example Doubling from 100 ms to a cap of 1 s
 * ```ts
 * import assert from "node:assert/strict";
 * import { backoff } from "./backoff.ts";
 * const policy = { firstMs: 100, maxMs: 1_000 };
 * assert.deepEqual([0, 1, 2, 3, 4, 50].map((n) => backoff(n, policy)), [
 *   100, 200, 400, 800, 1_000, 1_000,
 * ]);
 * ```
 *
 * @example Spread by ±20%
 * ```ts
 * import assert from "node:assert/strict";
 * import { backoff } from "./backoff.ts";
 * const policy = { firstMs: 1_000, maxMs: 60_000, jitter: 0.2 };
 * assert.equal(backoff(0, policy, () => 0), 800);
 * assert.equal(backoff(0, policy, () => 0.5), 1_000);
 * ```
 */
export function backoff(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const factor = policy.factor ?? 2;
  const n = Number.isNaN(attempt) ? 0 : Math.max(0, Math.floor(attempt));
  // Past the cap the power only grows toward Infinity: stop multiplying there.
  const base = Math.min(policy.maxMs, policy.firstMs * factor ** Math.min(n, 1_000));
  const jitter = policy.jitter ?? 0;
  if (jitter === 0) return Math.round(base);
  return Math.round(base * (1 - jitter + 2 * jitter * random()));
}
