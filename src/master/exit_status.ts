/**
 * How a process ended, in words and as the shell's exit status, and the exit
 * codes the master itself ends with.
 *
 * @module
 */

/** Exit code for a runtime failure of the master itself. */
export const EXIT_FAILURE = 1;
/** Exit code when the workers cannot boot (gunicorn's WORKER_BOOT_ERROR). */
export const EXIT_BOOT_FAILURE = 3;

// Linux numbers: forklift's workers share a port through SO_REUSEPORT, which
// only Linux balances, so these are the numbers its users' shells report.
const SIGNAL_NUMBERS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGIOT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPOLL: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};

/**
 * The Linux number of a signal name (`SIGRTMIN+3` included), or `undefined`
 * for a name Linux does not have.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { signalNumber } from "./exit_status.ts";
 * assert.ok(signalNumber("SIGKILL") === 9 && signalNumber("SIGSYS") === 31);
 * ```
 */
export function signalNumber(name: string): number | undefined {
  const known = SIGNAL_NUMBERS[name];
  if (known !== undefined) return known;
  // glibc's SIGRTMIN is 34 (the kernel's 32 and 33 belong to the thread library).
  const rt = /^SIGRT(MIN|MAX)(?:([+-])(\d+))?$/.exec(name);
  if (rt === null) return undefined;
  const offset = rt[2] === undefined ? 0 : Number(rt[3]) * (rt[2] === "-" ? -1 : 1);
  const n = (rt[1] === "MIN" ? 34 : 64) + offset;
  return n >= 34 && n <= 64 ? n : undefined;
}

/**
 * The status a shell reports for a process that ended with `code` or by
 * `signal`: the code itself, or 128 + the signal's number. A signal Linux has
 * no number for, or no status at all, is a failure (1).
 *
 * @example A program killed by SIGSYS
 * ```ts
 * import assert from "node:assert/strict";
 * import { exitStatus } from "./exit_status.ts";
 * assert.ok(exitStatus(null, "SIGSYS") === 159 && exitStatus(4, null) === 4);
 * ```
 */
export function exitStatus(code: number | null, signal: string | null): number {
  if (signal) {
    const n = signalNumber(signal);
    return n === undefined ? EXIT_FAILURE : 128 + n;
  }
  return code ?? EXIT_FAILURE;
}

/**
 * Describes how a process ended: `code 3`, `signal SIGKILL`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeExit } from "./exit_status.ts";
 * assert.ok(describeExit(null, "SIGKILL") === "signal SIGKILL");
 * ```
 */
export function describeExit(code: number | null, signal: string | null): string {
  return signal ? `signal ${signal}` : `code ${code ?? "unknown"}`;
}
