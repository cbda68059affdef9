/**
 * Reading and writing a `Deno.Conn` whole: the socket channel's two ends
 * (master and Deno worker) both need it.
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

/**
 * Feeds every chunk read from `conn` to `onChunk` until the peer closes it
 * (or it fails); resolves then. The chunk's memory is reused for the next
 * read: copy what must be kept. Before each read, waits for the promise
 * `paused` returns, if any: the reader's backpressure.
 *
 * @example
 * ```ts ignore
 * import { readChunks } from "./deno_conn.ts";
 * await readChunks(conn, (chunk) => console.log(chunk.length));
 * ```
 */
export async function readChunks(
  conn: any,
  onChunk: (chunk: Uint8Array) => void,
  paused: () => Promise<void> | undefined = () => undefined,
): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const wait = paused();
      if (wait !== undefined) await wait;
      const n = await conn.read(buf);
      if (n === null) return;
      onChunk(buf.subarray(0, n));
    }
  } catch {
    // Reset or closed by either end: the same as the end of the stream.
  }
}

/**
 * Writes all of `bytes` to `conn` (a write may take only part of them).
 *
 * @example
 * ```ts ignore
 * import { writeAll } from "./deno_conn.ts";
 * await writeAll(conn, new TextEncoder().encode("hello\n"));
 * ```
 */
export async function writeAll(conn: any, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}
