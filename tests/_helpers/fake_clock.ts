/**
 * The one fake clock of the tests: time moves only when a test advances it,
 * and timers fire in order of their due time (then of their creation) as it
 * passes them. It implements the master's {@linkcode Clock} port and carries
 * the `setTimeout` / `setInterval` shape a reporter host needs.
 *
 * @module
 */

import type { Clock } from "../../src/master/clock.ts";

/** One pending timer. */
export interface FakeTimer {
  fn: () => void;
  /** Its period (or delay, for a one-shot). */
  ms: number;
  /** When it fires next. */
  due: number;
  repeat: boolean;
  /** Set by the code under test through the handle's `unref()`. */
  unrefed: boolean;
}

/** A clock whose time and timers the test drives. */
export class FakeClock implements Clock {
  time = 0;
  /** Timers alive now, by id, in order of creation. */
  readonly timers = new Map<number, FakeTimer>();
  #nextId = 1;

  now(): number {
    return this.time;
  }

  /** The {@linkcode Clock} port: `fn` after `ms`; returns what cancels it. */
  after(ms: number, fn: () => void): () => void {
    const { id } = this.schedule(fn, ms, false);
    return () => void this.timers.delete(id);
  }

  /** A timer due `ms` from now, repeating when `repeat`; returns its id and an `unref`. */
  schedule(fn: () => void, ms: number, repeat: boolean): { id: number; unref(): void } {
    const id = this.#nextId++;
    const timer: FakeTimer = { fn, ms, due: this.time + ms, repeat, unrefed: false };
    this.timers.set(id, timer);
    return { id, unref: () => void (timer.unrefed = true) };
  }

  /** Cancels timer `id`, if it is still pending. */
  cancel(id: number): void {
    this.timers.delete(id);
  }

  /** Repeating timers alive now. */
  intervals(): FakeTimer[] {
    return [...this.timers.values()].filter((t) => t.repeat);
  }

  /** Moves time on by `ms`, firing each timer as its due time is passed. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (let next = this.#due(end); next !== undefined; next = this.#due(end)) this.#fire(next);
    this.time = end;
  }

  /**
   * As {@linkcode advance}, awaiting `settle()` before each timer and at the
   * end, so that what a timer started (a loop's next turn) runs before the
   * next one fires.
   */
  async advanceSettling(ms: number, settle: () => Promise<void>): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      await settle();
      const next = this.#due(end);
      if (next === undefined) break;
      this.#fire(next);
    }
    this.time = end;
    await settle();
  }

  /** The earliest timer due by `end` (the first made, of those due at once). */
  #due(end: number): [number, FakeTimer] | undefined {
    let next: [number, FakeTimer] | undefined;
    for (const entry of this.timers) {
      if (entry[1].due <= end && (next === undefined || entry[1].due < next[1].due)) next = entry;
    }
    return next;
  }

  #fire([id, timer]: [number, FakeTimer]): void {
    this.time = Math.max(this.time, timer.due);
    if (timer.repeat) timer.due += Math.max(timer.ms, 1);
    else this.timers.delete(id);
    timer.fn();
  }
}
