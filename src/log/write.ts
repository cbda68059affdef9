/**
 * Writes to the master's stdout and stderr (its log records and its workers'
 * output) without ever blocking the master: each descriptor has one write in
 * flight at a time and a bounded buffer behind it. A reader that stalls
 * costs lines, dropped and counted (and said once it reads again), never the
 * master's event loop; a closed descriptor (`EPIPE`) costs nothing more.
 *
 * @module
 */

import { writeStdio } from "../runtime/stdio.ts";

/** What one descriptor holds at most while its reader is slow. */
export const OUTPUT_BUFFER_BYTES = 1024 * 1024;
/** The most one write hands to the system at once. */
const CHUNK_BYTES = 64 * 1024;

const encoder = new TextEncoder();

/** Options of {@linkcode OutputWriter}. */
export interface OutputWriterOptions {
  /** Buffered bytes beyond which lines are dropped. */
  limitBytes?: number;
  /** Writes some of the bytes; resolves to how many, rejects when the descriptor is gone. */
  write?: (bytes: Uint8Array) => Promise<number>;
}

/**
 * One descriptor's writer: lines in order, none blocking, a bounded buffer.
 *
 * @example Lines go out in order
 * ```ts
 * import assert from "node:assert/strict";
 * import { OutputWriter } from "./write.ts";
 * const out: string[] = [];
 * const w = new OutputWriter(1, {
 *   write: (b) => (out.push(new TextDecoder().decode(b)), Promise.resolve(b.length)),
 * });
 * w.write("one\n");
 * w.write("two\n");
 * await w.flush(1000);
 * assert.equal(out.join(""), "one\ntwo\n");
 * ```
 */
export class OutputWriter {
  readonly fd: 1 | 2;
  #limit: number;
  #write: (bytes: Uint8Array) => Promise<number>;
  #queue: Uint8Array[] = [];
  #bytes = 0;
  #busy = false;
  #closed = false;
  /** Lines dropped since the reader last kept up, not yet told. */
  #untold = 0;
  #idle: Array<() => void> = [];
  /** Lines dropped so far: the reader stalled, or the descriptor is closed. */
  dropped = 0;
  /** Told once a stall is over, with the lines it cost. */
  onDropped?: (lines: number) => void;

  constructor(fd: 1 | 2, options: OutputWriterOptions = {}) {
    this.fd = fd;
    this.#limit = options.limitBytes ?? OUTPUT_BUFFER_BYTES;
    this.#write = options.write ?? ((bytes) => writeStdio(fd, bytes));
  }

  /** Whether the descriptor was found closed (nothing is written any more). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Queues one line (or record); drops and counts it when the buffer is full or the descriptor closed. */
  write(text: string): void {
    if (this.#closed) return void this.dropped++;
    const bytes = encoder.encode(text);
    if (this.#bytes + bytes.length > this.#limit) {
      this.dropped++;
      this.#untold++;
      return;
    }
    this.#queue.push(bytes);
    this.#bytes += bytes.length;
    if (!this.#busy) void this.#pump();
  }

  /** Resolves once everything queued is written, or after `ms` at most. */
  flush(ms: number): Promise<void> {
    if (!this.#busy) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async #pump(): Promise<void> {
    this.#busy = true;
    while (this.#queue.length > 0) {
      const chunk = this.#take();
      try {
        let at = 0;
        while (at < chunk.length) at += await this.#write(chunk.subarray(at));
      } catch {
        // EPIPE and the like: no reader will ever come back to this descriptor.
        this.#closed = true;
        this.dropped += this.#queue.length;
        this.#queue = [];
      }
      this.#bytes -= chunk.length;
      if (this.#queue.length === 0 && this.#untold > 0 && !this.#closed) {
        const lines = this.#untold;
        this.#untold = 0;
        this.onDropped?.(lines);
      }
    }
    this.#bytes = 0;
    this.#busy = false;
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  /** Joins queued lines into one write of at most CHUNK_BYTES (or one longer line). */
  #take(): Uint8Array {
    let n = 0;
    let size = 0;
    while (n < this.#queue.length && (n === 0 || size + this.#queue[n].length <= CHUNK_BYTES)) {
      size += this.#queue[n++].length;
    }
    const parts = this.#queue.splice(0, n);
    if (parts.length === 1) return parts[0];
    const chunk = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      chunk.set(p, at);
      at += p.length;
    }
    return chunk;
  }
}

/** The master's stdout and stderr writers, made on first use. */
const writers: { 1?: OutputWriter; 2?: OutputWriter } = {};

/**
 * The writer of stdout (`1`) or stderr (`2`), shared by everything the
 * master writes there.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { outputWriter } from "./write.ts";
 * assert.ok(outputWriter(2) === outputWriter(2));
 * ```
 */
export function outputWriter(fd: 1 | 2): OutputWriter {
  return (writers[fd] ??= new OutputWriter(fd));
}

/**
 * Writes all of `text` to stdout (`1`) or stderr (`2`) without blocking: it
 * is queued, or dropped and counted when the reader is too slow.
 *
 * @example
 * ```ts
 * import { writeTo } from "./write.ts";
 * writeTo(2, "forklift: hello\n");
 * ```
 */
export function writeTo(fd: 1 | 2, text: string): void {
  outputWriter(fd).write(text);
}

/**
 * Waits until what was written to stdout and stderr is out, `ms` at most
 * (a reader that stalls must not hold the exit back).
 *
 * @example
 * ```ts
 * import { flushOutput } from "./write.ts";
 * await flushOutput(1000);
 * ```
 */
export async function flushOutput(ms: number): Promise<void> {
  await Promise.all([writers[1]?.flush(ms), writers[2]?.flush(ms)]);
}
