/**
 * A minimal HTTP/1.1 client over a new TCP connection per request, so that
 * each poll may land on a different `reusePort` listener (a pooled fetch would
 * keep asking the same worker).
 *
 * @module
 */
import { connect } from "node:net";
import { sleep } from "./_process.ts";

/**
 * Sends `GET /` on a fresh connection to 127.0.0.1:`port` and resolves to the
 * number in the body (the fixture answers its pid), or `undefined` when
 * nothing answers within `timeoutMs`.
 */
export function askPid(port: number, timeoutMs = 1000): Promise<number | undefined> {
  return new Promise((resolve) => {
    let data = "";
    let done = false;
    const finish = (pid: number | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(pid);
    };
    const socket = connect({ port, host: "127.0.0.1" }, () => {
      socket.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    });
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.setNoDelay(true);
    socket.on("data", (d) => {
      data += d.toString();
      const at = data.indexOf("\r\n\r\n");
      // The fixture's body is one line: done as soon as it is complete.
      if (at >= 0 && data.endsWith("\n") && data.length > at + 4) {
        const pid = Number.parseInt(data.slice(at + 4), 10);
        finish(Number.isFinite(pid) ? pid : undefined);
      }
    });
    socket.on("error", () => finish(undefined));
    socket.on("close", () => finish(undefined));
  });
}

/** Pause between two polls: keeps the client from taking a core from the server it waits for. */
export const POLL_PAUSE_MS = 1;

/**
 * Polls `port` with new connections until an answering pid satisfies `accept`,
 * or `deadline` (a `performance.now()` time) passes, or `gone()` says the
 * server's process has exited. Resolves to the time of that answer and the
 * pid, or `undefined`.
 */
export async function pollUntil(
  port: number,
  accept: (pid: number) => boolean,
  deadline: number,
  gone: () => boolean = () => false,
): Promise<{ at: number; pid: number } | undefined> {
  while (performance.now() < deadline && !gone()) {
    const pid = await askPid(port, 500);
    if (pid !== undefined && accept(pid)) return { at: performance.now(), pid };
    await sleep(POLL_PAUSE_MS);
  }
  return undefined;
}
