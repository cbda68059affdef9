/**
 * Reaps orphans for a master that is PID 1 (a container's entry point): the
 * kernel re-parents to it every process whose parent died, and each one that
 * exits stays a zombie until PID 1 waits for it. Neither runtime waits for
 * children it did not start, so the C library is called directly: `waitid`
 * with `WNOWAIT` looks at the next exited child without collecting it, and
 * `waitpid` collects it only when it is not a worker, whose exit status is
 * the runtime's.
 *
 * @module
 */

import { openLibc } from "./libc.ts";

/** Collects exited children that nobody else waits for. */
export interface ZombieReaper {
  /**
   * Collects every exited child for which `isOwn` is false, stopping at the
   * first one it claims (the runtime collects that one); returns their pids.
   */
  reap(isOwn: (pid: number) => boolean): number[];
  /** Unloads the C library. */
  close(): void;
}

const P_ALL = 0;
const WNOHANG = 1;
const WEXITED = 4;
const WNOWAIT = 0x01000000;
// siginfo_t is 128 bytes; for SIGCHLD, si_pid sits after three ints and padding.
const SIGINFO_BYTES = 128;
const SI_PID = 4;
/** At most this many children collected per call, so one call stays short. */
const MAX_PER_CALL = 1024;

/**
 * Opens the reaper; undefined where the C library or FFI is not available.
 *
 * @example
 * ```ts ignore
 * import { openZombieReaper } from "./reaper.ts";
 * const reaper = await openZombieReaper();
 * reaper?.reap((pid) => myWorkers.has(pid));
 * ```
 */
export async function openZombieReaper(): Promise<ZombieReaper | undefined> {
  let libc;
  try {
    libc = await openLibc({
      waitid: { params: ["i32", "u32", "pointer", "i32"], result: "i32" },
      waitpid: { params: ["i32", "pointer", "i32"], result: "i32" },
    });
  } catch {
    return undefined;
  }
  const c = libc.call;
  const info = new Int32Array(SIGINFO_BYTES / 4);
  const status = new Int32Array(1);
  return {
    reap(isOwn) {
      const reaped: number[] = [];
      while (reaped.length < MAX_PER_CALL) {
        info.fill(0);
        // -1 with ECHILD: no children at all.
        if (c.waitid(P_ALL, 0, info, WEXITED | WNOHANG | WNOWAIT) !== 0) break;
        const pid = info[SI_PID];
        if (pid <= 0 || isOwn(pid)) break;
        if (c.waitpid(pid, status, WNOHANG) !== pid) break;
        reaped.push(pid);
      }
      return reaped;
    },
    close: () => libc.close(),
  };
}
