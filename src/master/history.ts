/**
 * A bounded history: the last few entries of something that happens again
 * and again (a worker's state changes), so that a worker repeating itself
 * costs the master a fixed amount of memory.
 *
 * @module
 */

/**
 * The most recent `capacity` entries, oldest first; older ones are dropped
 * and counted.
 *
 * @example Keep the last two
 * ```ts
 * import assert from "node:assert/strict";
 * import { History } from "./history.ts";
 * const h = new History<string>(2);
 * for (const s of ["starting", "ready", "bye"]) h.push(s);
 * assert.deepEqual(h.toArray(), ["ready", "bye"]);
 * assert.equal(h.dropped, 1);
 * ```
 */
export class History<T> {
  readonly capacity: number;
  #items: T[] = [];
  /** Where the oldest entry is once the ring is full. */
  #head = 0;
  /** Entries pushed out so far. */
  dropped = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`Cannot keep a history of ${capacity} entries: expected at least 1`);
    }
    this.capacity = capacity;
  }

  /** Entries held now. */
  get length(): number {
    return this.#items.length;
  }

  /** Adds an entry, pushing out the oldest when full. */
  push(item: T): void {
    if (this.#items.length < this.capacity) {
      this.#items.push(item);
      return;
    }
    this.#items[this.#head] = item;
    this.#head = (this.#head + 1) % this.capacity;
    this.dropped++;
  }

  /** The entries, oldest first. */
  toArray(): T[] {
    return [...this.#items.slice(this.#head), ...this.#items.slice(0, this.#head)];
  }
}
