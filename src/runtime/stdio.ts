/**
 * Writes to the master's own stdout and stderr without ever blocking its
 * event loop, whatever the descriptor is (a pipe whose reader stalls, a
 * closed pipe, a terminal): Deno's `Deno.stdout.write` and Bun's
 * `node:fs.write` do the write off the main thread and report `EPIPE` as a
 * rejected promise, never as a thrown error or a signal. (Deno's
 * `node:fs.write` blocks the event loop on a full pipe.)
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

import { write } from "node:fs";

/**
 * Writes some of `bytes` to stdout (`1`) or stderr (`2`); resolves to how
 * many were written, rejects with the system's error (`EPIPE`, ...).
 *
 * @example
 * ```ts ignore
 * import { writeStdio } from "./stdio.ts";
 * const n = await writeStdio(2, new TextEncoder().encode("hello\n"));
 * ```
 */
export function writeStdio(fd: 1 | 2, bytes: Uint8Array): Promise<number> {
  const deno = (globalThis as any).Deno;
  if (deno !== undefined && (globalThis as any).Bun === undefined) {
    return (fd === 1 ? deno.stdout : deno.stderr).write(bytes);
  }
  return new Promise((resolve, reject) => {
    write(fd, bytes, 0, bytes.length, null, (error, n) => error ? reject(error) : resolve(n));
  });
}
