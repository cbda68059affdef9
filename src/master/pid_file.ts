/**
 * The master's pid file (`--pid-file`): written at start, moved by a reload
 * that names another path, removed at exit.
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

/**
 * Moves the pid file to `path` (a reload): writes the new file first, then
 * removes the old one. Resolves to the file now written and, when the new one
 * cannot be written, the error (the old file is then kept).
 *
 * @example Move a pid file
 * ```ts
 * import assert from "node:assert/strict";
 * import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
 * import { tmpdir } from "node:os";
 * import { movePidFile, writePidFile } from "./pid_file.ts";
 * const dir = mkdtempSync(`${tmpdir()}/pid-doc-`);
 * const old = writePidFile(`${dir}/a.pid`, 42);
 * const { file, error } = movePidFile(old, `${dir}/b.pid`, 42);
 * assert.equal(error, undefined);
 * assert.equal(readFileSync(file!.path, "utf8"), "42\n");
 * assert.ok(!existsSync(`${dir}/a.pid`));
 * rmSync(dir, { recursive: true });
 * ```
 */
export function movePidFile(
  current: PidFile | undefined,
  path: string | null,
  pid: number,
): { file: PidFile | undefined; error?: unknown } {
  if (path === (current?.path ?? null)) return { file: current };
  let file: PidFile | undefined;
  if (path !== null) {
    try {
      file = writePidFile(path, pid);
    } catch (error) {
      return { file: current, error };
    }
  }
  current?.remove();
  return { file };
}
