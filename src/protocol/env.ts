/**
 * The worker environment contract: the `FORKLIFT_*` variables the master sets
 * for each worker and the reporter reads inside it. Both sides name them from
 * here, so the lists cannot drift apart. Imports nothing: it loads inside the
 * user's process.
 *
 * @module
 */

/** The master's pid; a reporter speaks the protocol only when it is its parent's. */
export const MASTER_PID_ENV = "FORKLIFT_MASTER_PID";
/** The worker's slot, 1..N, stable across respawns. */
export const WORKER_ID_ENV = "FORKLIFT_WORKER_ID";
/** How many workers the master runs. */
export const WORKERS_ENV = "FORKLIFT_WORKERS";
/** Socket path of a Deno worker's channel to the master. */
export const CHANNEL_ENV = "FORKLIFT_CHANNEL";
/** The token a Deno worker sends first on its channel, naming itself. */
export const CHANNEL_TOKEN_ENV = "FORKLIFT_CHANNEL_TOKEN";
/**
 * Isolates in the worker, each with its own reporter and channel connection
 * (`deno serve --parallel`); absent for one.
 */
export const ISOLATES_ENV = "FORKLIFT_ISOLATES";

/** Variables every worker gets. */
export const WORKER_ENV_NAMES: readonly string[] = [MASTER_PID_ENV, WORKER_ID_ENV, WORKERS_ENV];
/** Variables a worker on a socket channel gets besides. */
export const CHANNEL_ENV_NAMES: readonly string[] = [CHANNEL_ENV, CHANNEL_TOKEN_ENV];
/** Every variable of the contract: none of them is a setting. */
export const ALL_WORKER_ENV_NAMES: readonly string[] = [
  ...WORKER_ENV_NAMES,
  ...CHANNEL_ENV_NAMES,
  ISOLATES_ENV,
];

/** One worker's place, as {@linkcode workerEnv} writes it. */
export interface WorkerEnvOptions {
  masterPid: number;
  slot: number;
  workers: number;
  /** The socket channel and this worker's token, when it talks over one. */
  channel?: { path: string; token: string };
}

/**
 * The contract's variables for one worker.
 *
 * @example Worker 2 of 4 on a socket channel
 * ```ts
 * import assert from "node:assert/strict";
 * import { workerEnv } from "./env.ts";
 * const env = workerEnv({ masterPid: 10, slot: 2, workers: 4, channel: { path: "/run/f.sock", token: "t" } });
 * assert.ok(env.FORKLIFT_WORKER_ID === "2" && env.FORKLIFT_CHANNEL_TOKEN === "t");
 * ```
 */
export function workerEnv(options: WorkerEnvOptions): Record<string, string> {
  const env: Record<string, string> = {
    [MASTER_PID_ENV]: String(options.masterPid),
    [WORKER_ID_ENV]: String(options.slot),
    [WORKERS_ENV]: String(options.workers),
  };
  if (options.channel !== undefined) {
    env[CHANNEL_ENV] = options.channel.path;
    env[CHANNEL_TOKEN_ENV] = options.channel.token;
  }
  return env;
}
