/**
 * Names the runtime this code runs on, once for the whole project: the
 * master's runtime adapter and the reporter inside workers both ask here. It
 * imports nothing, so it is cheap inside the user's process.
 *
 * @module
 */

/**
 * Returns `"deno/<version>"`, `"bun/<version>"` or `"node/<version>"` for the
 * running runtime.
 *
 * @example Name the runtime
 * ```ts
 * import { runtimeId } from "./detect.ts";
 * console.log(runtimeId()); // e.g. "deno/2.9.6"
 * ```
 */
export function runtimeId(): string {
  const ua = typeof navigator === "object" ? String(navigator.userAgent ?? "") : "";
  const match = /^(Deno|Bun|Node\.js)\/(\S+)/.exec(ua);
  if (match) return `${match[1] === "Node.js" ? "node" : match[1].toLowerCase()}/${match[2]}`;
  const versions = (globalThis as { process?: { versions?: Record<string, string> } }).process
    ?.versions;
  if (versions?.bun) return `bun/${versions.bun}`;
  if (versions?.deno) return `deno/${versions.deno}`;
  return `node/${versions?.node ?? "unknown"}`;
}
