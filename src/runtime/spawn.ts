/**
 * Starts worker processes through `node:child_process`, which gives the same
 * private IPC channel on Deno and Bun (no socket file, no token).
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";

/** Options of {@linkcode spawnWorkerProcess}. */
export interface SpawnOptions {
  /** The complete environment of the child. */
  env: Record<string, string>;
  cwd: string;
  /** Give the child the master's stdin (`--once`), else none. */
  inheritStdin?: boolean;
  /** Start the child in its own process group. */
  detached?: boolean;
}

/**
 * Spawns `argv` with piped stdout/stderr and an IPC channel.
 *
 * @example Start a worker
 * ```ts ignore
 * import { spawnWorkerProcess } from "./spawn.ts";
 * const child = spawnWorkerProcess(["/usr/bin/deno", "run", "server.ts"], { env: {}, cwd: "." });
 * child.on("message", (m) => console.log(m));
 * ```
 */
export function spawnWorkerProcess(argv: string[], options: SpawnOptions): ChildProcess {
  return spawn(argv[0], argv.slice(1), {
    env: options.env,
    cwd: options.cwd,
    stdio: [options.inheritStdin ? "inherit" : "ignore", "pipe", "pipe", "ipc"],
    serialization: "json",
    detached: options.detached ?? false,
  });
}

/** The child process type the master handles. */
export type { ChildProcess };
