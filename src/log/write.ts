/**
 * Writes to the master's stdout and stderr: synchronously to the file
 * descriptor, which keeps lines in order and costs nothing to set up, where
 * the first `process.stderr.write` costs Bun 2-3 ms, on the way from start to
 * the first worker.
 *
 * @module
 */

import { writeSync } from "node:fs";
import process from "node:process";

const encoder = new TextEncoder();

/**
 * Writes all of `text` to stdout (`1`) or stderr (`2`). Falls back to the
 * process's stream when the descriptor refuses (a non-blocking pipe that is
 * full), so nothing is lost.
 *
 * @example
 * ```ts
 * import { writeTo } from "./write.ts";
 * writeTo(2, "forklift: hello\n");
 * ```
 */
export function writeTo(fd: 1 | 2, text: string): void {
  const bytes = encoder.encode(text);
  let at = 0;
  try {
    while (at < bytes.length) at += writeSync(fd, bytes, at, bytes.length - at);
  } catch {
    const rest = new TextDecoder().decode(bytes.subarray(at));
    (fd === 1 ? process.stdout : process.stderr).write(rest);
  }
}
