/**
 * Makes every worker die with the master, injected or not: a small `sh`
 * started beside the workers waits for its stdin, a pipe from the master, to
 * close. The master keeps the list of its workers' process groups in a file
 * of a private directory, rewritten (synchronously, then renamed into place)
 * as each worker is spawned and exits. When the pipe closes without the
 * master having emptied the list (a master killed by SIGKILL runs no exit
 * code), the watch signals each group listed, TERM then KILL a second later.
 * It costs one idle process per master and nothing per request; a worker with
 * a reporter also stops on its own when its channel to the master breaks.
 * The master starts it before its first worker and lists each one as it is
 * spawned: a master killed at any moment, during the boot too, leaves no
 * worker behind, ready or not.
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

/** A running watch: tell it which process groups to stop should the master die. */
export interface MasterDeathWatch {
  /**
   * Runs `start`, which spawns a worker in a process group of its own, and
   * lists the group; should the master die before the pid is known, the
   * watch finds the worker by its `FORKLIFT_MASTER_PID`.
   */
  spawn<T extends { readonly pid: number | null | undefined }>(start: () => T): T;
  /** A worker's process group (its pid) to stop if the master dies. */
  add(pgid: number): void;
  /** The group is gone (its worker exited): forget it. */
  remove(pgid: number): void;
  /** Ends the watch as the master stops normally; groups still listed are stopped. */
  close(): void;
}

// Ignores the terminal's signals: a Ctrl-C reaches the master, which stops
// the workers itself; the watch only acts once the master is gone. $1 is the
// list, in a directory of its own that the watch removes; $2 the master's pid.
// "spawning" in the list: the master died with a spawn under way, before it
// could list the pid, so the leaders of groups whose environment names it as
// their master are stopped too (a kill of a pid that leads no group fails).
const SCRIPT = `trap '' INT HUP TERM QUIT
while IFS= read -r l; do :; done
g=$(cat "$1" 2>/dev/null)
rm -rf "\${1%/*}"
case "$g" in *spawning*)
  for f in $(grep -lzx "FORKLIFT_MASTER_PID=$2" /proc/[0-9]*/environ 2>/dev/null); do
    f=\${f#/proc/}; g="$g \${f%/environ}"
  done ;;
esac
g=$(printf '%s\\n' $g | grep -x '[0-9][0-9]*')
for p in $g; do kill -TERM -"$p" 2>/dev/null; done
[ -z "$g" ] || sleep 1
for p in $g; do kill -KILL -"$p" 2>/dev/null; done
`;

/**
 * Starts the watch; `undefined` when no `sh` can be started or no private
 * directory made (the master then supervises as before, and says so).
 *
 * @example
 * ```ts ignore
 * import { startMasterDeathWatch } from "./master_death_watch.ts";
 * const watch = await startMasterDeathWatch();
 * watch?.add(worker.pid);
 * ```
 */
export async function startMasterDeathWatch(): Promise<MasterDeathWatch | undefined> {
  const g = globalThis as any;
  let dir: string;
  try {
    // mkdtemp: a fresh name of its own, mode 0700, that no other user can take or replace.
    dir = mkdtempSync(join(tmpdir(), "forklift-watch-"));
  } catch {
    return undefined;
  }
  const list = join(dir, "groups");
  const argv = ["sh", "-c", SCRIPT, "sh", list, String(process.pid)];
  let end: () => void;
  try {
    if (g.Bun !== undefined) {
      const proc = g.Bun.spawn(argv, {
        stdin: "pipe",
        stdout: "ignore",
        stderr: "ignore",
        // Its own group: signals meant for the master's group do not reach it.
        detached: true,
      });
      proc.unref?.();
      end = () => void proc.stdin.end();
    } else {
      const { spawn } = await import("node:child_process");
      const child = spawn(argv[0], argv.slice(1), {
        stdio: ["pipe", "ignore", "ignore"],
        detached: true,
      });
      child.on("error", () => {});
      child.stdin!.on("error", () => {});
      child.unref();
      (child.stdin as any).unref?.();
      end = () => void child.stdin!.end();
    }
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  const groups = new Set<number>();
  let spawning = false;
  // Written in full and renamed: a master killed mid-write leaves the last whole list.
  const save = () => {
    try {
      writeFileSync(`${list}.new`, [...groups, ...(spawning ? ["spawning"] : [])].join("\n"));
      renameSync(`${list}.new`, list);
    } catch {
      // The directory is gone (the watch ended): nothing more to tell it.
    }
  };
  const add = (pgid: number) => void (groups.add(pgid), save());
  return {
    spawn(start) {
      spawning = true;
      save();
      try {
        const started = start();
        spawning = false;
        if (typeof started.pid === "number") add(started.pid);
        else save();
        return started;
      } catch (e) {
        spawning = false;
        save();
        throw e;
      }
    },
    add,
    remove: (pgid) => void (groups.delete(pgid) && save()),
    close: () => {
      try {
        end();
      } catch {
        // Already closed.
      }
    },
  };
}
