/**
 * The master's pid file (`--pid-file`): written at start, removed at exit.
 *
 * @module
 */
import { closeSync, rmSync, writeSync } from "node:fs";
import { openNoFollow } from "../log/open_file.ts";

/** A written pid file. */
export interface PidFile {
  readonly path: string;
  /** Removes the file; best effort, never throws. */
  remove(): void;
}

/**
 * Writes `pid` and a newline to `path`; throws the file system's error, or
 * a one-line error when `path` is a symbolic link (never followed).
 *
 * @example
 * ```ts ignore
 * import { writePidFile } from "./pid_file.ts";
 * const file = writePidFile("/run/forklift.pid", 4242);
 * file.remove();
 * ```
 */
export function writePidFile(path: string, pid: number): PidFile {
  const fd = openNoFollow(path, "truncate");
  try {
    writeSync(fd, `${pid}\n`);
  } finally {
    closeSync(fd);
  }
  return {
    path,
    remove() {
      try {
        rmSync(path, { force: true });
      } catch {
        // Removing a pid file is best effort at exit.
      }
    },
  };
}
