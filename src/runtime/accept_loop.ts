/**
 * The accept loop of every listener forklift runs on Deno's own sockets (the
 * workers' channel and the metrics endpoint); Bun's listeners accept by
 * themselves and call back. A failed accept (EMFILE when the process runs
 * out of descriptors) never ends the loop: it waits, longer after each
 * failure in a row, and accepts again. Only closing the listener ends it.
 *
 * @module
 */

import { backoff, type BackoffPolicy } from "../protocol/backoff.ts";

/**
 * Waits after failed accepts in a row: from 100 ms, doubling to 1 s, so that
 * descriptors freed soon are used soon and a lasting shortage costs at most
 * one accept a second.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ACCEPT_BACKOFF } from "./accept_loop.ts";
 * assert.deepEqual(ACCEPT_BACKOFF, { firstMs: 100, maxMs: 1_000 });
 * ```
 */
export const ACCEPT_BACKOFF: BackoffPolicy = { firstMs: 100, maxMs: 1_000 };

/** What the loop needs of a listener: Deno's `Listener` has it. */
export interface Acceptor<C> {
  accept(): Promise<C>;
}

/** The running loop. */
export interface AcceptLoop {
  /** Resolves when the loop has ended (the listener closed). */
  readonly done: Promise<void>;
  /** Ends the loop at its next turn; the caller closes the listener. */
  stop(): void;
}

/** Options of {@linkcode acceptLoop}. */
export interface AcceptLoopOptions {
  /** Waits `ms`; a timer when not given (tests pass their own). */
  sleep?: (ms: number) => Promise<void>;
  /** Told of each failed accept and the wait before the next. */
  onError?: (error: unknown, waitMs: number) => void;
}

/** Whether an accept failed because the listener is closed: nothing to wait for then. */
function closedListener(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  return name === "BadResource" || name === "Interrupted";
}

const timer = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Accepts connections from `listener` and hands each to `serve`, until
 * {@linkcode AcceptLoop.stop} or the listener is closed. A failed accept is
 * followed by a wait of {@linkcode ACCEPT_BACKOFF} (reset by the next
 * success) and another accept.
 *
 * @example Hands each connection over, then ends when the listener closes
 * ```ts
 * import assert from "node:assert/strict";
 * import { acceptLoop } from "./accept_loop.ts";
 * const queue = [Promise.resolve("a"), Promise.reject(Object.assign(new Error(), { name: "BadResource" }))];
 * const served: string[] = [];
 * const loop = acceptLoop({ accept: () => queue.shift()! }, (c) => served.push(c));
 * await loop.done;
 * assert.deepEqual(served, ["a"]);
 * ```
 */
export function acceptLoop<C>(
  listener: Acceptor<C>,
  serve: (conn: C) => void,
  options: AcceptLoopOptions = {},
): AcceptLoop {
  const sleep = options.sleep ?? timer;
  let open = true;
  const done = (async () => {
    let failures = 0;
    while (open) {
      let conn: C;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (!open || closedListener(error)) return;
        const waitMs = backoff(failures++, ACCEPT_BACKOFF);
        try {
          options.onError?.(error, waitMs);
        } catch { /* a report must not end the loop */ }
        await sleep(waitMs);
        continue;
      }
      failures = 0;
      try {
        serve(conn);
      } catch { /* one connection's failure is that connection's */ }
    }
  })();
  return {
    done,
    stop() {
      open = false;
    },
  };
}
