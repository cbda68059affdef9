/**
 * The arbiter's one queue: signal listeners and worker callbacks only push
 * here, and the loop takes one event at a time, or a tick when nothing came
 * in time.
 *
 * @module
 */
import type { Clock } from "./clock.ts";

/**
 * A first-in first-out queue whose reader waits on a clock. Taking an event
 * costs the same however many wait behind it (a ring that doubles when full,
 * where `Array.shift()` moves every element).
 *
 * @example Take what was pushed, or a tick after 500 ms
 * ```ts
 * import assert from "node:assert/strict";
 * import { systemClock } from "./clock.ts";
 * import { EventQueue } from "./event_queue.ts";
 * const queue = new EventQueue<string>(systemClock);
 * queue.push("SIGHUP");
 * assert.equal(queue.length, 1);
 * assert.equal(await queue.next(500, () => "tick"), "SIGHUP");
 * assert.equal(await queue.next(10, () => "tick"), "tick");
 * ```
 */
export class EventQueue<T> {
  #clock: Clock;
  #ring: Array<T | undefined> = new Array(16);
  #head = 0;
  #length = 0;
  #wake?: () => void;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Events waiting. */
  get length(): number {
    return this.#length;
  }

  /** Adds an event and wakes a waiting reader. */
  push(item: T): void {
    if (this.#length === this.#ring.length) this.#grow();
    this.#ring[(this.#head + this.#length) % this.#ring.length] = item;
    this.#length++;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Takes the oldest event, if any, without waiting. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const item = this.#ring[this.#head];
    // Let go of it: a drained queue holds on to nothing.
    this.#ring[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#ring.length;
    this.#length--;
    return item;
  }

  /** The next event; `timeout()`'s result when none arrives within `ms`. */
  next(ms: number, timeout: () => T): Promise<T> {
    if (this.#length > 0) return Promise.resolve(this.shift()!);
    return new Promise((resolve) => {
      const cancel = this.#clock.after(ms, () => {
        this.#wake = undefined;
        resolve(timeout());
      });
      this.#wake = () => {
        cancel();
        resolve(this.shift()!);
      };
    });
  }

  #grow(): void {
    const ring = new Array<T | undefined>(this.#ring.length * 2);
    for (let i = 0; i < this.#length; i++) {
      ring[i] = this.#ring[(this.#head + i) % this.#ring.length];
    }
    this.#ring = ring;
    this.#head = 0;
  }
}
