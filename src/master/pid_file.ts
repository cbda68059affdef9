/**
 * The master's pid file (`--pid-file`): written at start, removed at exit.
 *
 * @module
 */
import { rmSync, writeFileSync } from "node:fs";
import { firstLine } from "../config/errors.ts";

/** A written pid file. */
export interface PidFile {
  readonly path: string;
  /** Removes the file; best effort, never throws. */
  remove(): void;
}

/**
 * Writes `pid` and a newline to `path`. Throws an `Error` whose message names
 * the file and the first line of the cause.
 *
 * @example
 * ```ts ignore
 * import { writePidFile } from "./pid_file.ts";
 * const file = writePidFile("/run/forklift.pid", 4242);
 * file.remove();
 * ```
 */
export function writePidFile(path: string, pid: number): PidFile {
  try {
    writeFileSync(path, `${pid}\n`);
  } catch (e) {
    throw new Error(`Cannot write pid file ${path}: ${firstLine(e)}`, { cause: e });
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
