/**
 * The spawner port: starts a worker process for a slot and generation, and
 * tells the arbiter what it hears from it. The real spawner gives each worker
 * its environment, its channel (the socket injected workers talk over, or a
 * Node IPC channel), its request limit with jitter and its `welcome`.
 *
 * @module
 */
import process from "node:process";
import type { Logger } from "@logtape/logtape";
import type { ResolvedSettings } from "../config/load.ts";
import { workerEnv } from "../protocol/env.ts";
import type { WelcomeMessage } from "../protocol/messages.ts";
import { type ChannelServer, channelToken, listenChannel } from "../runtime/channel_server.ts";
import { type MasterDeathWatch, startMasterDeathWatch } from "../runtime/master_death_watch.ts";
import { prepareSpawn, spawnWorkerProcess } from "../runtime/spawn.ts";
import { sweepStaleChannels } from "./channel_sweep.ts";
import { foreignListeners, type Listener } from "./port_owners.ts";
import { SECRET_ENV_NAMES } from "../config/settings.ts";
import { SYSTEMD_ENV_NAMES } from "./systemd.ts";
import type { LaunchPlan } from "./inject.ts";
import type { WorkerRef } from "./supervisor.ts";
import { type WorkerEvents, WorkerHandle } from "./worker_handle.ts";

/** What the master asks of the next worker besides its ref. */
export interface SpawnHow {
  /** The number of workers the master runs now. */
  workers: () => number;
  /** How often it sends a heartbeat, in ms (0: never), as the supervisor asks. */
  heartbeatMs: number;
}

/** A started worker: its handle, and what the supervisor must know of it. */
export interface Spawned {
  handle: WorkerHandle;
  /** It will say `hello` once its program runs, even if that takes a while. */
  expectsHello: boolean;
  /** Requests after which it is recycled (max_requests + jitter), 0 for never. */
  requestLimit: number;
  /** Reporters it runs: one, or one per isolate. */
  isolates: number;
}

/** Starts workers. */
export interface WorkerSpawner {
  /** The argv every worker runs. */
  readonly argv: string[];
  /**
   * Loads what spawning needs and starts making every worker die with the
   * master, whatever it runs, from the moment it is spawned; call once before
   * the first spawn.
   */
  prepare(): Promise<void>;
  /** Takes new settings (a reload): the next spawn uses them. */
  configure(settings: ResolvedSettings): void;
  /**
   * Starts one worker as `how` says; throws when the process cannot be
   * started. What the process reports goes to `events`, as it is.
   */
  spawn(worker: WorkerRef, how: SpawnHow, events: WorkerEvents): Spawned;
  /**
   * The sockets listening on `port` that none of `pids` (the workers) holds:
   * another program already serving the workers' port.
   */
  foreignListeners(port: number, pids: readonly number[]): Listener[];
  /**
   * Removes what masters killed by SIGKILL left behind (channel sockets);
   * resolves to the paths removed. Called once every worker is ready.
   */
  sweep(): Promise<string[]>;
  /** Releases what it holds (the channel socket). */
  close(): void;
}

/** Options of {@linkcode ProcessSpawner}. */
export interface ProcessSpawnerOptions {
  settings: ResolvedSettings;
  /** Plans a worker's argv and env for the given settings. */
  plan: (settings: ResolvedSettings) => LaunchPlan;
  /** The master's environment, passed on to every worker. */
  env: Record<string, string>;
  cwd: string;
  log: Logger;
  write: { stdout(s: string): void; stderr(s: string): void };
  /** A number in [0, 1) for the max_requests jitter. */
  random?: () => number;
}

/**
 * The real spawner: worker processes on this runtime.
 *
 * @example
 * ```ts ignore
 * import { ProcessSpawner } from "./spawner.ts";
 * const spawner = new ProcessSpawner({ settings, plan, env, cwd, log, write });
 * await spawner.prepare();
 * const how = { workers: () => 1, heartbeatMs: 5_000 };
 * const { handle } = spawner.spawn({ id: 1, slot: 1, generation: 1 }, how, events);
 * ```
 */
export class ProcessSpawner implements WorkerSpawner {
  #o: ProcessSpawnerOptions;
  #settings: ResolvedSettings;
  #plan: LaunchPlan;
  /** The socket Deno workers talk over; opened with the first such worker. */
  #channel?: ChannelServer;
  #channelFailed = false;
  #deathWatch?: MasterDeathWatch;

  constructor(options: ProcessSpawnerOptions) {
    this.#o = options;
    this.#settings = options.settings;
    this.#plan = options.plan(options.settings);
  }

  get argv(): string[] {
    return this.#plan.argv;
  }

  async prepare(): Promise<void> {
    await prepareSpawn();
    // Under --once the program shares the master's group: there is no group of its own to stop.
    if (this.#settings.config.once) return;
    // Up before the first worker, so that a master killed at any moment,
    // even during the boot, leaves no worker behind to serve its port.
    this.#deathWatch = await startMasterDeathWatch();
    if (this.#deathWatch === undefined) {
      this.#o.log.warn(
        "Cannot start the watch that stops workers when the master dies (no sh?): workers of a killed master may outlive it",
      );
    }
  }

  configure(settings: ResolvedSettings): void {
    this.#settings = settings;
    this.#plan = this.#o.plan(settings);
  }

  spawn(ref: WorkerRef, how: SpawnHow, events: WorkerEvents): Spawned {
    const { workers, heartbeatMs } = how;
    const config = this.#settings.config;
    const once = config.once;
    const channel = this.#openChannel();
    const env = {
      ...withoutMasterOnly(this.#o.env),
      ...this.#plan.env,
      ...workerEnv({
        masterPid: process.pid,
        slot: ref.slot,
        workers: workers(),
        channel: channel && { path: channel.server.path, token: channel.token },
      }),
    };
    const spawnOptions = {
      env,
      cwd: this.#o.cwd,
      // --once behaves as the program itself (same process group, stdin); otherwise
      // workers get their own group so a terminal's Ctrl-C reaches only the master,
      // which asks for a final harvest before anything is signalled.
      inheritStdin: once,
      detached: !once,
      channel: channel && { ...channel, isolates: this.#plan.isolates ?? 1 },
      onCutOff: (unsent: number) =>
        this.#o.log.warn(
          "Worker {slot} does not read its IPC channel ({unsent} messages waiting): the channel is closed",
          { slot: ref.slot, unsent },
        ),
    };
    const argv = this.#plan.argv;
    const deathWatch = once ? undefined : this.#deathWatch;
    const handle = new WorkerHandle(
      (on) => {
        const started: { pid?: number } = {};
        // Gone, it no longer needs stopping with the master.
        const exit = (code: number | null, signal: string | null) => {
          if (started.pid !== undefined) this.#deathWatch?.remove(started.pid);
          on.exit(code, signal);
        };
        const start = () => spawnWorkerProcess(argv, spawnOptions, { ...on, exit });
        const child = deathWatch === undefined ? start() : deathWatch.spawn(start);
        started.pid = child.pid;
        return child;
      },
      ref,
      {
        events,
        welcome: (h) => this.#welcome(h, heartbeatMs),
        output: {
          prefix: () => workers() > 1,
          json: () => this.#settings.config.logFormat === "json",
        },
        write: this.#o.write,
        isolates: channel === undefined ? 1 : this.#plan.isolates ?? 1,
      },
    );
    const maxRequests = config.maxRequests;
    const jitter = config.maxRequestsJitter;
    const random = this.#o.random ?? Math.random;
    return {
      handle,
      isolates: handle.isolates,
      expectsHello: channel !== undefined,
      requestLimit: maxRequests > 0 ? maxRequests + Math.floor(random() * (jitter + 1)) : 0,
    };
  }

  foreignListeners(port: number, pids: readonly number[]): Listener[] {
    return foreignListeners(port, pids);
  }

  async sweep(): Promise<string[]> {
    return this.#channel === undefined ? [] : await sweepStaleChannels(this.#channel.path);
  }

  close(): void {
    this.#channel?.close();
    this.#deathWatch?.close();
  }

  /** The socket channel and a fresh token for the next worker, when the plan asks for one. */
  #openChannel(): { server: ChannelServer; token: string } | undefined {
    const path = this.#plan.channel;
    if (path === undefined || this.#channelFailed) return undefined;
    if (this.#channel === undefined) {
      try {
        this.#channel = listenChannel(path, {
          // Once per connection cut, and a worker has one connection per isolate.
          onCutOff: (queued) =>
            this.#o.log.warn(
              "A worker does not read its channel ({queued} bytes waiting): its connection is closed",
              { queued },
            ),
        });
      } catch (e) {
        // Workers then find no socket named and use the Node IPC channel.
        this.#channelFailed = true;
        this.#o.log.warn("Cannot listen on {path} ({error}); workers use Node IPC instead", {
          path,
          error: String((e as Error)?.message ?? e),
        });
        return undefined;
      }
    }
    return { server: this.#channel, token: channelToken() };
  }

  #welcome(w: WorkerHandle, heartbeatMs: number): Omit<WelcomeMessage, "type" | "v"> {
    return {
      worker: w.slot,
      generation: w.generation,
      harvest_interval_ms: this.#settings.config.harvestIntervalMs,
      heartbeat_ms: heartbeatMs,
      reuse_port: true,
    };
  }
}

/**
 * What is the master's alone: systemd's notify variables, and the
 * `FORKLIFT_*` variables of secret settings (the metrics endpoint's
 * credentials), which the app, and whatever it runs, has no use for.
 */
const MASTER_ONLY_ENV: readonly string[] = [...SYSTEMD_ENV_NAMES, ...SECRET_ENV_NAMES];

/** The master's environment without what is the master's alone. */
function withoutMasterOnly(env: Record<string, string>): Record<string, string> {
  if (!MASTER_ONLY_ENV.some((name) => name in env)) return env;
  const out = { ...env };
  for (const name of MASTER_ONLY_ENV) delete out[name];
  return out;
}
