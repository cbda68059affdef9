/**
 * Timer handles differ by runtime (objects in Deno 2 and Bun, numbers in
 * older Deno and browsers); this normalises them in one place. It imports
 * nothing, so the reporter can use it inside the user's process.
 *
 * @module
 */

/**
 * Makes a timer never keep the process alive: `unref()` on object handles,
 * `Deno.unrefTimer()` on numeric ones where it exists.
 *
 * @example Arm a timer that does not hold the process open
 * ```ts
 * import { unrefTimer } from "./timers.ts";
 * const t = unrefTimer(setInterval(() => {}, 1000));
 * clearInterval(t);
 * ```
 */
export function unrefTimer<T>(handle: T): T {
  if (typeof handle === "object" && handle !== null) {
    const unref = (handle as { unref?: () => unknown }).unref;
    if (typeof unref === "function") unref.call(handle);
  } else if (typeof handle === "number") {
    const deno = (globalThis as { Deno?: { unrefTimer?: (id: number) => void } }).Deno;
    deno?.unrefTimer?.(handle);
  }
  return handle;
}

const REPEAT = Symbol("forklift.repeat");

interface Repeat {
  [REPEAT]: Int32Array;
  cancelled: boolean;
  unref(): void;
}

type WaitAsync = (
  cell: Int32Array,
  index: number,
  value: number,
  ms: number,
) => { async: boolean; value: Promise<string> | string };

/**
 * Calls `fn` every `ms` milliseconds, never keeping the process alive.
 *
 * In Deno the first timer a process arms costs 5–10 ms of its main thread
 * (the timer machinery loads on first use), which a worker's first requests
 * would wait for; `Atomics.waitAsync` with a timeout runs the same schedule
 * without it, and never holds the event loop. Elsewhere this is an unref'd
 * `setInterval`.
 *
 * @example
 * ```ts
 * import { cancelTimer, repeatEvery } from "./timers.ts";
 * const t = repeatEvery(() => console.log("tick"), 1000);
 * cancelTimer(t);
 * ```
 */
export function repeatEvery(fn: () => void, ms: number): unknown {
  const waitAsync = (Atomics as unknown as { waitAsync?: WaitAsync }).waitAsync;
  const deno = (globalThis as { Deno?: unknown }).Deno;
  if (deno === undefined || typeof waitAsync !== "function") {
    return unrefTimer(setInterval(fn, ms));
  }
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const handle: Repeat = { [REPEAT]: cell, cancelled: false, unref() {} };
  const arm = () => {
    const r = waitAsync(cell, 0, 0, ms);
    if (typeof r.value === "string") return; // cannot wait here: no schedule
    r.value.then(() => {
      if (handle.cancelled) return;
      arm();
      fn();
    });
  };
  arm();
  return handle;
}

/**
 * Stops a timer from {@linkcode repeatEvery}, `setInterval` or `setTimeout`.
 *
 * @example
 * ```ts
 * import { cancelTimer } from "./timers.ts";
 * cancelTimer(setTimeout(() => {}, 1000));
 * ```
 */
export function cancelTimer(handle: unknown): void {
  const repeat = handle as Partial<Repeat> | undefined;
  const cell = repeat?.[REPEAT];
  if (cell !== undefined) {
    repeat!.cancelled = true;
    // Wakes the pending wait so nothing is left scheduled.
    Atomics.notify(cell, 0);
    return;
  }
  clearTimeout(handle as ReturnType<typeof setTimeout>);
}
