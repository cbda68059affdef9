/**
 * Makes every worker die with the master, injected or not: a small `sh`
 * started beside the workers reads the master's list of worker process groups
 * from a pipe. When the pipe closes without the master having emptied the
 * list (a master killed by SIGKILL runs no exit code), it signals each group,
 * TERM then KILL a second later. It costs one idle process per master and
 * nothing per request; a worker with a reporter also stops on its own when
 * its channel to the master breaks. The master starts it once its workers are
 * ready: a master killed during the boot leaves `--no-inject` workers behind.
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

/** A running watch: tell it which process groups to stop should the master die. */
export interface OrphanWatch {
  /** A worker's process group (its pid) to stop if the master dies. */
  add(pgid: number): void;
  /** The group is gone (its worker exited): forget it. */
  remove(pgid: number): void;
  /** Ends the watch as the master stops normally; groups still listed are stopped. */
  close(): void;
}

// Ignores the terminal's signals: a Ctrl-C reaches the master, which stops
// the workers itself; the watch only acts once the master is gone.
const SCRIPT = `trap '' INT HUP TERM QUIT
g=" "
while IFS= read -r l; do
  case "$l" in
    +*) g="$g\${l#+} " ;;
    -*) g=$(printf '%s' "$g" | sed "s/ \${l#-} / /") ;;
  esac
done
for p in $g; do kill -TERM -"$p" 2>/dev/null; done
[ "$g" = " " ] || sleep 1
for p in $g; do kill -KILL -"$p" 2>/dev/null; done
`;

/**
 * Starts the watch; `undefined` when no `sh` can be started (the master then
 * supervises as before, and says so).
 *
 * @example
 * ```ts ignore
 * import { startOrphanWatch } from "./orphan_watch.ts";
 * const watch = await startOrphanWatch();
 * watch?.add(worker.pid);
 * ```
 */
export async function startOrphanWatch(): Promise<OrphanWatch | undefined> {
  const g = globalThis as any;
  let write: (line: string) => void;
  let end: () => void;
  try {
    if (g.Bun !== undefined) {
      const proc = g.Bun.spawn(["sh", "-c", SCRIPT], {
        stdin: "pipe",
        stdout: "ignore",
        stderr: "ignore",
        // Its own group: signals meant for the master's group do not reach it.
        detached: true,
      });
      proc.unref?.();
      write = (line) => {
        proc.stdin.write(line);
        proc.stdin.flush();
      };
      end = () => void proc.stdin.end();
    } else {
      const { spawn } = await import("node:child_process");
      const child = spawn("sh", ["-c", SCRIPT], {
        stdio: ["pipe", "ignore", "ignore"],
        detached: true,
      });
      child.on("error", () => {});
      child.stdin!.on("error", () => {});
      child.unref();
      (child.stdin as any).unref?.();
      write = (line) => void child.stdin!.write(line);
      end = () => void child.stdin!.end();
    }
  } catch {
    return undefined;
  }
  const send = (line: string) => {
    try {
      write(line);
    } catch {
      // The watch is gone: nothing more to tell it.
    }
  };
  return {
    add: (pgid) => send(`+${pgid}\n`),
    remove: (pgid) => send(`-${pgid}\n`),
    close: () => {
      try {
        end();
      } catch {
        // Already closed.
      }
    },
  };
}
