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
