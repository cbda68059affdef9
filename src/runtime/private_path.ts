/**
 * Paths only their owner may use, and removed only while they are still what
 * their owner made: the channel's private directory and its socket.
 *
 * @module
 */

import { lstatSync, rmdirSync, unlinkSync } from "node:fs";
import process from "node:process";

/** A file as the kernel knows it: what a path named when it was made. */
export interface FileId {
  dev: number;
  ino: number;
}

export function fileId(path: string): FileId | undefined {
  try {
    const st = lstatSync(path);
    return { dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}

/**
 * Removes `path` only if it is still the file `id` named: another master's
 * socket or directory, made at that path since, is never ours to remove.
 * (Bun unlinks a Unix listener's path itself as it stops; the private
 * directory is what keeps anything but our socket from being there.)
 */
export function removeIfSame(path: string, id: FileId | undefined, directory: boolean): void {
  const now = fileId(path);
  if (id === undefined || now === undefined || now.dev !== id.dev || now.ino !== id.ino) return;
  try {
    if (directory) rmdirSync(path);
    else unlinkSync(path);
  } catch { /* gone meanwhile, or not empty: left as it is */ }
}

/** Throws unless `path` is a `kind` owned by this user that no one else may use. */
export function assertPrivate(path: string, kind: "directory" | "socket"): void {
  const st = lstatSync(path);
  const uid = typeof process.getuid === "function" ? process.getuid() : st.uid;
  const isKind = kind === "directory" ? st.isDirectory() : st.isSocket();
  if (!isKind || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new Error(`${path} is not a ${kind} private to this user`);
  }
}
