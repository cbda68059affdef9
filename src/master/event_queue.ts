/**
 * The arbiter's one queue: signal listeners and worker callbacks only push
 * here, and the loop takes one event at a time, or a tick when nothing came
 * in time.
 *
 * @module
 */
import type { Clock } from "./clock.ts";

/**
 * A first-in first-out queue whose reader waits on a clock.
 *
 * @example Take what was pushed, or a tick after 500 ms
 * ```ts
 * import { systemClock } from "./clock.ts";
 * import { EventQueue } from "./event_queue.ts";
 * const queue = new EventQueue<string>(systemClock);
 * queue.push("SIGHUP");
 * console.assert(await queue.next(500, () => "tick") === "SIGHUP");
 * ```
 */
export class EventQueue<T> {
  #clock: Clock;
  #items: T[] = [];
  #wake?: () => void;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Adds an event and wakes a waiting reader. */
  push(item: T): void {
    this.#items.push(item);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The next event; `timeout()`'s result when none arrives within `ms`. */
  next(ms: number, timeout: () => T): Promise<T> {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift()!);
    return new Promise((resolve) => {
      const cancel = this.#clock.after(ms, () => {
        this.#wake = undefined;
        resolve(timeout());
      });
      this.#wake = () => {
        cancel();
        resolve(this.#items.shift()!);
      };
    });
  }
}
