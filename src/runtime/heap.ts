/**
 * Reads the JavaScript heap in use, the cheapest way each runtime allows and
 * without loading a module: the reporter runs inside the user's process,
 * where every module loaded is memory a bare server does not pay for (Deno's
 * `node:v8` alone costs a worker some 450 KiB of private memory).
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

/**
 * A function returning the bytes of the JavaScript heap in use, or undefined
 * where the runtime offers no reader. Deno: `Deno.memoryUsage().heapUsed`
 * (V8's used heap size). Bun and Node: `process.memoryUsage().heapUsed`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { heapUsedReader } from "./heap.ts";
 * const read = heapUsedReader();
 * assert.ok(read !== undefined && read() > 0);
 * ```
 */
export function heapUsedReader(): (() => number) | undefined {
  const g = globalThis as any;
  const deno = g.Deno;
  if (typeof deno?.memoryUsage === "function") return () => deno.memoryUsage().heapUsed;
  const process = g.process;
  if (typeof process?.memoryUsage === "function") return () => process.memoryUsage().heapUsed;
  return undefined;
}
