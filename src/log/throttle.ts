/**
 * One warning per key (a worker, say) per interval: what a hostile or broken
 * peer can make the master write is bounded by time, not by what it sends.
 *
 * @module
 */

/**
 * Admits at most one log line per key every `intervalMs`, and says how many
 * were held back since the last one.
 *
 * @example One line per worker every 10 s
 * ```ts
 * import assert from "node:assert/strict";
 * import { LogThrottle } from "./throttle.ts";
 * const throttle = new LogThrottle(10_000);
 * assert.ok(throttle.admit(1, 0) === "");
 * assert.ok(throttle.admit(1, 5) === undefined);
 * assert.ok(throttle.admit(1, 10_000) === " (and 1 more since the last report)");
 * ```
 */
export class LogThrottle {
  #intervalMs: number;
  #last = new Map<number, { at: number; suppressed: number }>();

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /**
   * Whether a line for `key` may be written at `now` (ms): `undefined` when
   * not (it is counted), else the suffix that tells how many were not.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { LogThrottle } from "./throttle.ts";
   * assert.ok(new LogThrottle(1000).admit(7, 0) === "");
   * ```
   */
  admit(key: number, now: number): string | undefined {
    const last = this.#last.get(key);
    if (last !== undefined && now - last.at < this.#intervalMs) {
      last.suppressed++;
      return undefined;
    }
    this.#last.set(key, { at: now, suppressed: 0 });
    return last?.suppressed ? ` (and ${last.suppressed} more since the last report)` : "";
  }

  /**
   * Forgets `key` (a worker that exited): the map holds live keys only.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { LogThrottle } from "./throttle.ts";
   * const throttle = new LogThrottle(1000);
   * throttle.admit(7, 0);
   * throttle.forget(7);
   * assert.ok(throttle.admit(7, 1) === "");
   * ```
   */
  forget(key: number): void {
    this.#last.delete(key);
  }
}

/**
 * `text` cut to `max` characters with an ellipsis: a reason may quote what a
 * peer sent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shorten } from "./throttle.ts";
 * assert.ok(shorten("abcdef", 3) === "abc…");
 * ```
 */
export function shorten(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
