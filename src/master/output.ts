/**
 * Passes a worker's stdout and stderr through, line by line, prefixed with
 * its slot (`[w2] …`) when several workers share the terminal, or wrapped as
 * JSON when the master logs JSON.
 *
 * @module
 */

/** How worker lines are written. */
export interface OutputOptions {
  /** `[wN] ` prefix (more than one worker). */
  prefix: () => boolean;
  /** Wrap each line as a JSON object. */
  json: () => boolean;
}

/** Longest line kept before it is written out without waiting for a newline. */
const MAX_LINE = 64 * 1024;

/**
 * Returns a data listener and a flush function for one worker stream.
 *
 * @example Prefix a worker's stdout
 * ```ts
 * import assert from "node:assert/strict";
 * import { lineWriter } from "./output.ts";
 * const out: string[] = [];
 * const w = lineWriter(1, "stdout", (s) => out.push(s), { prefix: () => true, json: () => false });
 * w.write(new TextEncoder().encode("hello\nwor"));
 * w.flush();
 * assert.ok(out.join("") === "[w1] hello\n[w1] wor\n");
 * ```
 */
export function lineWriter(
  slot: number,
  stream: "stdout" | "stderr",
  write: (text: string) => void,
  options: OutputOptions,
): { write(chunk: Uint8Array | string): void; flush(): void } {
  const decoder = new TextDecoder();
  let pending = "";
  const emit = (line: string) => {
    if (options.json()) {
      write(JSON.stringify({ worker: slot, stream, line }) + "\n");
    } else {
      write(options.prefix() ? `[w${slot}] ${line}\n` : `${line}\n`);
    }
  };
  return {
    write(chunk) {
      pending += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
      let i: number;
      while ((i = pending.indexOf("\n")) >= 0) {
        emit(pending.slice(0, i));
        pending = pending.slice(i + 1);
      }
      if (pending.length > MAX_LINE) {
        emit(pending);
        pending = "";
      }
    },
    flush() {
      pending += decoder.decode();
      if (pending !== "") emit(pending);
      pending = "";
    },
  };
}
