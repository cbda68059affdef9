/**
 * The master as a systemd `Type=notify` service: `READY=1` once every worker
 * is first ready, `RELOADING=1` (with `MONOTONIC_USEC`) and `READY=1` around a
 * reload, `STOPPING=1` on stop, `STATUS=` with the worker counts, and
 * `WATCHDOG=1` at half of `WATCHDOG_USEC` when the unit sets a watchdog. All
 * from the master's own pid, as `NotifyAccess=main` requires.
 *
 * @module
 */
import type { SystemdSocket } from "../runtime/sd_notify.ts";

/** The variables systemd gives a notify service, which its workers must not inherit. */
export const SYSTEMD_ENV_NAMES: readonly string[] = [
  "NOTIFY_SOCKET",
  "WATCHDOG_USEC",
  "WATCHDOG_PID",
];

/** What the master tells systemd. */
export class SystemdNotifier {
  readonly #socket: SystemdSocket;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  /** The last `STATUS=` sent: an unchanged one is not sent again. */
  #status = "";

  /** Wraps an open notification socket (see `openSystemdSocket`). */
  constructor(socket: SystemdSocket) {
    this.#socket = socket;
  }

  /** Every worker is ready (at boot, or once a reload rolled them all). */
  ready(status: string): void {
    this.#status = status;
    this.#socket.send(`READY=1\nSTATUS=${status}`);
  }

  /** A reload starts: systemd waits for the next `READY=1`. */
  reloading(status: string): void {
    const usec = this.#socket.monotonicUsec();
    this.#status = status;
    this.#socket.send(`RELOADING=1\nMONOTONIC_USEC=${usec}\nSTATUS=${status}`);
  }

  /** The master stops. */
  stopping(status: string): void {
    this.#status = status;
    this.#socket.send(`STOPPING=1\nSTATUS=${status}`);
  }

  /** A new status line, when the worker counts changed. */
  status(status: string): void {
    if (status === this.#status) return;
    this.#status = status;
    this.#socket.send(`STATUS=${status}`);
  }

  /**
   * Pings systemd's watchdog at half of `WATCHDOG_USEC`, when it is set for
   * this process (`WATCHDOG_PID` absent or this pid).
   */
  startWatchdog(env: Record<string, string | undefined>, pid: number): void {
    const usec = Number(env.WATCHDOG_USEC);
    if (!Number.isFinite(usec) || usec <= 0) return;
    if (env.WATCHDOG_PID !== undefined && Number(env.WATCHDOG_PID) !== pid) return;
    const ms = Math.max(1, Math.floor(usec / 2000));
    this.#socket.send("WATCHDOG=1");
    this.#watchdog = setInterval(() => this.#socket.send("WATCHDOG=1"), ms);
  }

  /** Stops the watchdog and closes the socket. */
  close(): void {
    clearInterval(this.#watchdog);
    this.#socket.close();
  }
}

/**
 * The `STATUS=` line: how many workers are ready of how many the master runs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { statusLine } from "./systemd.ts";
 * assert.ok(statusLine(2, 4) === "2 of 4 workers ready");
 * ```
 */
export function statusLine(ready: number, workers: number): string {
  return `${ready} of ${workers} worker${workers === 1 ? "" : "s"} ready`;
}
