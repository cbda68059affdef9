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

/** `Atomics.waitAsync` where forklift times with it: in Deno (see {@linkcode repeatEvery}). */
function denoWaitAsync(): WaitAsync | undefined {
  const waitAsync = (Atomics as unknown as { waitAsync?: WaitAsync }).waitAsync;
  const deno = (globalThis as { Deno?: unknown }).Deno;
  return deno === undefined || typeof waitAsync !== "function" ? undefined : waitAsync;
}

/**
 * Waits `ms` on a cell of its own, then calls `then` unless the handle was
 * cancelled ({@linkcode cancelTimer} wakes the wait early). A wait of 0 ms
 * answers at once, with no promise, and schedules nothing.
 */
function waitOnce(waitAsync: WaitAsync, handle: Repeat, ms: number, then: () => void): void {
  const r = waitAsync(handle[REPEAT], 0, 0, ms);
  if (typeof r.value === "string") return;
  r.value.then(() => {
    if (!handle.cancelled) then();
  });
}

function newHandle(): Repeat {
  return { [REPEAT]: new Int32Array(new SharedArrayBuffer(4)), cancelled: false, unref() {} };
}

/**
 * Calls `fn` every `ms` milliseconds, never keeping the process alive.
 *
 * In Deno the first timer a process arms costs 5–10 ms of its main thread
 * and about 1.7 MiB of private memory (the timer machinery loads on first
 * use), which every worker would carry; `Atomics.waitAsync` with a timeout
 * runs the same schedule without either, and never holds the event loop.
 * Elsewhere this is an unref'd `setInterval`.
 *
 * @example
 * ```ts
 * import { cancelTimer, repeatEvery } from "./timers.ts";
 * const t = repeatEvery(() => console.log("tick"), 1000);
 * cancelTimer(t);
 * ```
 */
export function repeatEvery(fn: () => void, ms: number): unknown {
  const waitAsync = denoWaitAsync();
  if (waitAsync === undefined) return unrefTimer(setInterval(fn, ms));
  const handle = newHandle();
  const arm = (): void => {
    waitOnce(waitAsync, handle, ms, () => {
      arm();
      fn();
    });
  };
  arm();
  return handle;
}

/**
 * Calls `fn` once after `ms` milliseconds, never keeping the process alive:
 * for waits that something else holds the process open for (a listener, a
 * connection), such as a draining server's. In Deno it costs no timer
 * machinery, as {@linkcode repeatEvery}; elsewhere an unref'd `setTimeout`.
 *
 * @example
 * ```ts
 * import { afterDelay, cancelTimer } from "./timers.ts";
 * const t = afterDelay(() => console.log("late"), 1000);
 * cancelTimer(t);
 * ```
 */
export function afterDelay(fn: () => void, ms: number): unknown {
  const waitAsync = denoWaitAsync();
  if (waitAsync === undefined) return unrefTimer(setTimeout(fn, ms));
  const handle = newHandle();
  // At least 1 ms: a wait of 0 would never call `fn`.
  waitOnce(waitAsync, handle, Math.max(ms, 1), fn);
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
