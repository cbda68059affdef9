/**
 * Opens the files the master writes by name (`log_file`, `pid_file`) without
 * following a symbolic link: in a directory others can write to, a link put
 * there would have the master write wherever it points.
 *
 * @module
 */
import { constants, openSync } from "node:fs";

/**
 * Opens `path` for writing, created with mode 0644 if missing, `append`ed to
 * or `truncate`d; refuses a symbolic link with a one-line error. Returns the
 * file descriptor.
 *
 * @example Append to a log file
 * ```ts
 * import assert from "node:assert/strict";
 * import { closeSync, mkdtempSync, rmSync } from "node:fs";
 * import { tmpdir } from "node:os";
 * import { openNoFollow } from "./open_file.ts";
 * const dir = mkdtempSync(`${tmpdir()}/forklift-doc-`);
 * const fd = openNoFollow(`${dir}/master.log`, "append");
 * assert.equal(typeof fd, "number");
 * closeSync(fd);
 * rmSync(dir, { recursive: true });
 * ```
 */
export function openNoFollow(path: string, how: "append" | "truncate"): number {
  const { O_WRONLY, O_CREAT, O_APPEND, O_TRUNC, O_NOFOLLOW } = constants;
  try {
    return openSync(
      path,
      O_WRONLY | O_CREAT | O_NOFOLLOW | (how === "append" ? O_APPEND : O_TRUNC),
      0o644,
    );
  } catch (e) {
    // O_NOFOLLOW answers a link as the last component with ELOOP.
    if ((e as { code?: string })?.code === "ELOOP") {
      throw new Error("it is a symbolic link, which is not followed");
    }
    throw e;
  }
}
