/**
 * Reads the kernel setting that decides whether a closing reusePort listener
 * hands its queued connections to a sibling (Linux `tcp_migrate_req`).
 *
 * @module
 */
import { readFileSync } from "node:fs";

/** The sysctl that makes listener retirement lossless on Linux. */
export const MIGRATE_REQ = "net.ipv4.tcp_migrate_req";

/**
 * The current value of `net.ipv4.tcp_migrate_req`, or `undefined` where the
 * kernel has none (not Linux, or older than 5.14).
 *
 * @example
 * ```ts
 * import { readMigrateReq } from "./sysctl.ts";
 * if (readMigrateReq() === 0) console.log("retiring a worker may reset queued connections");
 * ```
 */
export function readMigrateReq(path = "/proc/sys/net/ipv4/tcp_migrate_req"): number | undefined {
  try {
    const n = Number(readFileSync(path, "utf8").trim());
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The one-line warning for a setting of 0, with the commands that fix it.
 *
 * @example
 * ```ts
 * import { migrateReqWarning } from "./sysctl.ts";
 * console.log(migrateReqWarning());
 * ```
 */
export function migrateReqWarning(): string {
  return `${MIGRATE_REQ} is 0: a worker retired during a reload resets the connections still ` +
    `queued on its listener. Fix: sysctl -w ${MIGRATE_REQ}=1 (and keep it with ` +
    `"echo ${MIGRATE_REQ}=1 > /etc/sysctl.d/90-forklift.conf")`;
}
