/**
 * Runs a function when the process is about to end because nothing is left
 * to do (a normal exit, not a signal or `exit()`): Deno's `beforeunload`
 * event, Node's and Bun's `beforeExit`. Work the function starts keeps the
 * process alive until it is done, so a last export can go out.
 *
 * @module
 */

/**
 * Calls `fn` before a normal exit (each time the event loop runs dry).
 *
 * @example Send what is left
 * ```ts ignore
 * import { beforeExit } from "./before_exit.ts";
 * beforeExit(() => void exporter.flush());
 * ```
 */
export function beforeExit(fn: () => void): void {
  const g = globalThis as {
    Deno?: unknown;
    addEventListener?: (type: string, fn: () => void) => void;
    process?: { on?: (event: string, fn: () => void) => void };
  };
  // In Deno, touching `process` would start the Node compatibility layer.
  if (g.Deno !== undefined) g.addEventListener?.("beforeunload", fn);
  else g.process?.on?.("beforeExit", fn);
}
