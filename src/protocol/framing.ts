/**
 * Framing of the socket channel that Deno workers use in place of a Node IPC
 * channel: one JSON message per line. The worker's first line is its token
 * (which worker it is); every later line is one protocol message.
 * `JSON.stringify` never emits a raw newline, so a line is always a whole
 * message.
 *
 * @module
 */

/** Longest line accepted; a longer one is cut off and reported as invalid. */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

const NEWLINE = 0x0a;
const encoder = new TextEncoder();

/**
 * Encodes one message as a line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeLine } from "./framing.ts";
 * assert.ok(new TextDecoder().decode(encodeLine({ type: "ack" })) === '{"type":"ack"}\n');
 * ```
 */
export function encodeLine(message: unknown): Uint8Array {
  return encoder.encode(`${JSON.stringify(message)}\n`);
}

/**
 * Parses one line into a message, or returns `undefined` when it is not JSON
 * (the caller counts it as invalid, as for any malformed message).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseLine } from "./framing.ts";
 * assert.ok(parseLine('{"type":"hello"}').type === "hello");
 * assert.ok(parseLine("not json") === undefined);
 * ```
 */
// deno-lint-ignore no-explicit-any
export function parseLine(line: string): any {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

/**
 * Splits a byte stream into lines, keeping a partial line until its end
 * arrives. A line longer than {@linkcode MAX_LINE_BYTES} is given to the
 * caller as `undefined` (and the rest of it skipped), so a broken peer cannot
 * make the reader buffer without bound.
 *
 * @example Two chunks, three lines
 * ```ts
 * import assert from "node:assert/strict";
 * import { LineSplitter } from "./framing.ts";
 * const lines: (string | undefined)[] = [];
 * const split = new LineSplitter((line) => lines.push(line));
 * split.push(new TextEncoder().encode("a\nb"));
 * split.push(new TextEncoder().encode("c\nd\n"));
 * assert.ok(lines.join(",") === "a,bc,d");
 * ```
 */
export class LineSplitter {
  readonly #onLine: (line: string | undefined) => void;
  /** Longest line accepted from now on. */
  maxBytes: number;
  readonly #decoder = new TextDecoder();
  #parts: Uint8Array[] = [];
  #size = 0;
  #skipping = false;

  /**
   * @param onLine Called with each complete line (without its newline), or
   *   `undefined` for a line that was too long.
   * @param maxBytes Longest line accepted.
   */
  constructor(onLine: (line: string | undefined) => void, maxBytes: number = MAX_LINE_BYTES) {
    this.#onLine = onLine;
    this.maxBytes = maxBytes;
  }

  /** Feeds the next chunk of the stream. */
  push(chunk: Uint8Array): void {
    let start = 0;
    for (;;) {
      const end = chunk.indexOf(NEWLINE, start);
      if (end === -1) break;
      this.#take(chunk.subarray(start, end), true);
      start = end + 1;
    }
    if (start < chunk.length) this.#take(chunk.subarray(start), false);
  }

  #take(piece: Uint8Array, complete: boolean): void {
    if (!this.#skipping) {
      this.#size += piece.length;
      if (this.#size > this.maxBytes) {
        this.#parts = [];
        this.#skipping = true;
        this.#onLine(undefined);
      } else if (piece.length > 0) {
        // A subarray of a chunk the caller may reuse: keep a copy.
        this.#parts.push(complete && this.#parts.length === 0 ? piece : piece.slice());
      }
    }
    if (!complete) return;
    if (!this.#skipping) {
      const parts = this.#parts;
      const line = parts.length === 1 ? parts[0] : concat(parts, this.#size);
      this.#onLine(this.#decoder.decode(line));
    }
    this.#parts = [];
    this.#size = 0;
    this.#skipping = false;
  }
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
