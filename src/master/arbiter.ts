/**
 * The master: spawns the workers, speaks the handshake, aggregates their
 * harvests, serves `/metrics` and `/status`, and supervises as gunicorn's
 * arbiter does. Signal listeners only enqueue; one loop acts.
 *
 * @module
 */
import { rmSync, writeFileSync } from "node:fs";
import process from "node:process";
import type { Logger } from "@logtape/logtape";
import type { ResolvedSettings } from "../config/load.ts";
import type { HarvestMessage } from "../protocol/messages.ts";
import { Aggregator } from "../export/aggregator.ts";
import type { MetricsServer } from "../export/http_server.ts";
import { masterMetrics, renderPrometheus } from "../export/prometheus.ts";
import type { StatusDocument, WorkerStatus } from "../export/status.ts";
import type { Runtime, SignalName } from "../runtime/runtime.ts";
import { prepareSpawn, spawnWorkerProcess } from "../runtime/spawn.ts";
import { type ChannelServer, channelToken, listenChannel } from "../runtime/channel_server.ts";
import { VERSION } from "../version.ts";
import type { Hooks, MasterDescriptor, WorkerDescriptor } from "./hooks.ts";
import type { LaunchPlan } from "./inject.ts";
import { sweepStaleChannels } from "./channel_path.ts";
import { migrateReqWarning, readMigrateReq } from "./sysctl.ts";
import { describeExit, WorkerHandle } from "./worker_handle.ts";

/** Exit code when the workers cannot boot (gunicorn's WORKER_BOOT_ERROR). */
export const EXIT_BOOT_FAILURE = 3;
/** Exit code for a runtime failure of the master itself. */
export const EXIT_FAILURE = 1;

/** Why a worker was replaced, as `forklift_worker_restarts_total{reason}` counts it. */
export type RestartReason = "crash" | "timeout" | "reload" | "max_requests" | "scale";
const REASONS: RestartReason[] = ["crash", "timeout", "reload", "max_requests", "scale"];

/** Everything the arbiter needs to run. */
export interface ArbiterOptions {
  runtime: Runtime;
  settings: ResolvedSettings;
  /** Re-resolves the settings for a HUP reload; throws a ConfigError on bad input. */
  reloadSettings: () => ResolvedSettings;
  /** Plans a worker's argv and env for the given settings. */
  plan: (settings: ResolvedSettings) => LaunchPlan;
  /** The master's environment, passed on to every worker. */
  env: Record<string, string>;
  cwd: string;
  /** The service.name resource of every worker. */
  serviceName: string;
  hooks: Hooks;
  log: Logger;
  /** Reapplies log level and format after a reload. */
  reconfigureLogging?: (settings: ResolvedSettings) => void;
  /** USR1: reopen the log file. */
  reopenLogs?: () => void;
  write: { stdout(s: string): void; stderr(s: string): void };
}

type Event =
  | { kind: "signal"; signal: SignalName }
  | { kind: "exit"; worker: WorkerHandle }
  | { kind: "ready"; worker: WorkerHandle }
  | { kind: "tick" }
  | { kind: "services" };

interface Slot {
  id: number;
  current?: WorkerHandle;
  /** The next generation, started to replace `current`. */
  next?: WorkerHandle;
  nextReason?: RestartReason;
  spawns: number;
  restarts: number;
  /** Consecutive boot failures, for the backoff. */
  bootFailures: number;
  /** Crashes in a row (each within CRASH_WINDOW_MS of the last), for the backoff. */
  crashes: number;
  lastCrashAt: number;
  /** No respawn before this time (performance.now() ms). */
  backoffUntil: number;
  /** The reason to count when the slot is next spawned. */
  pendingReason?: RestartReason;
}

const TICK_MS = 500;
/** A worker killed for silence gets this long after SIGTERM before SIGKILL. */
const KILL_GRACE_MS = 1_000;
const MAX_BACKOFF_MS = 5_000;
const MAX_BOOT_FAILURES = 5;
const CRASH_WINDOW_MS = 10_000;
/** A program that never says hello is taken as booted once it has lived this long. */
const UNMANAGED_READY_MS = 1_000;
/** A reporter that never says ready (a server it did not wrap) is taken as ready after this. */
const MANAGED_READY_MS = 10_000;
/**
 * The metrics endpoint starts once every worker is ready, or this long after
 * the first spawn if that comes first. Starting it costs the master a few
 * milliseconds of main thread (the runtime's first server), which would
 * otherwise compete with the booting workers for the cores.
 */
const SERVICES_DELAY_MS = 250;
const SIGNALS: SignalName[] = [
  "SIGTERM",
  "SIGINT",
  "SIGQUIT",
  "SIGHUP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGUSR1",
];

/** The respawn delay after `n` failures in a row: none for the first, then doubling to a cap. */
function backoffDelay(n: number): number {
  return n <= 0 ? 0 : Math.min(MAX_BACKOFF_MS, 100 * 2 ** n);
}

function seconds(settings: ResolvedSettings, name: string): number {
  return (settings.values[name] as number) * 1000;
}

/**
 * The master process's supervisor.
 *
 * @example Run until a signal stops it
 * ```ts ignore
 * import { Arbiter } from "./arbiter.ts";
 * const code = await new Arbiter(options).run();
 * ```
 */
export class Arbiter {
  #o: ArbiterOptions;
  #settings: ResolvedSettings;
  #plan: LaunchPlan;
  #slots = new Map<number, Slot>();
  /** Workers that left their slot and are draining. */
  #retiring = new Set<WorkerHandle>();
  #queue: Event[] = [];
  #wake?: () => void;
  #aggregator = new Aggregator();
  #server?: MetricsServer;
  /** The socket Deno workers talk over; opened with the first such worker. */
  #channel?: ChannelServer;
  #channelFailed = false;
  #restarts: Record<string, number> = Object.fromEntries(REASONS.map((r) => [r, 0]));
  #harvests = 0;
  #dropped = 0;
  #invalid = 0;
  #startedAt = new Date();
  #booted = false;
  #servicesStarted = false;
  #servicesTimer?: ReturnType<typeof setTimeout>;
  #stopping: "graceful" | "quick" | undefined;
  #stopDeadline = 0;
  #exitCode: number | undefined;
  /** The exit code a stop was asked to end with (boot failure, metrics bind). */
  #exitCodeOnStop: number | undefined;
  /** Slots waiting for a rolling replacement, in order. */
  #rollQueue: Array<{ slot: number; reason: RestartReason }> = [];
  #onceResult: number | undefined;
  #pidFile?: string;

  constructor(options: ArbiterOptions) {
    this.#o = options;
    this.#settings = options.settings;
    this.#plan = options.plan(options.settings);
  }

  get #workerCount(): number {
    return this.#once ? 1 : this.#settings.values.workers as number;
  }

  get #once(): boolean {
    return this.#settings.values.once as boolean;
  }

  get #log(): Logger {
    return this.#o.log;
  }

  #master(): MasterDescriptor {
    return { pid: process.pid, workers: this.#workerCount, command: this.#plan.argv };
  }

  #describe(w: WorkerHandle, reason?: string): WorkerDescriptor {
    return {
      slot: w.slot,
      generation: w.generation,
      pid: w.pid,
      exitCode: w.exitCode,
      signal: w.exitSignal,
      reason: reason ?? w.stopReason,
    };
  }

  async #hook<K extends keyof Hooks>(name: K, arg: Parameters<NonNullable<Hooks[K]>>[0]) {
    const fn = this.#o.hooks[name] as ((a: typeof arg) => unknown) | undefined;
    if (!fn) return;
    try {
      await fn(arg);
    } catch (e) {
      this.#log.error("Hook {hook} failed: {error}", {
        hook: name,
        error: String((e as Error)?.message ?? e),
      });
    }
  }

  #enqueue(event: Event): void {
    this.#queue.push(event);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #next(): Promise<Event> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve({ kind: "tick" });
      }, TICK_MS);
      this.#wake = () => {
        clearTimeout(timer);
        resolve(this.#queue.shift() ?? { kind: "tick" });
      };
    });
  }

  /** Starts everything and resolves to the exit code once the master stops. */
  async run(): Promise<number> {
    const onStarting = this.#o.hooks.onStarting;
    if (onStarting) {
      try {
        await onStarting(this.#master());
      } catch (e) {
        this.#log.error("Hook onStarting failed, not starting: {error}", {
          error: String((e as Error)?.message ?? e),
        });
        return 2;
      }
    }
    if (!this.#writePidFile()) return EXIT_FAILURE;
    const removers = SIGNALS.map((s) =>
      this.#o.runtime.onSignal(s, () => this.#enqueue({ kind: "signal", signal: s }))
    );
    await prepareSpawn();
    // Workers first: they boot while the master sets up the rest.
    for (let id = 1; id <= this.#workerCount; id++) this.#slots.set(id, this.#newSlot(id));
    await this.#manage();
    this.#log.info("Started {n} worker(s): {argv}", {
      n: this.#workerCount,
      argv: this.#plan.argv.join(" "),
    });
    if (this.#workerCount > 1 && readMigrateReq() === 0) this.#log.warn(migrateReqWarning());
    this.#servicesTimer = setTimeout(
      () => this.#enqueue({ kind: "services" }),
      SERVICES_DELAY_MS,
    );

    while (this.#exitCode === undefined) {
      const event = await this.#next();
      await this.#handle(event);
      if (this.#exitCode === undefined) await this.#manage();
    }

    for (const remove of removers) remove();
    clearTimeout(this.#servicesTimer);
    this.#log.info("Master exiting with code {code}", { code: this.#exitCode });
    await this.#server?.close();
    this.#channel?.close();
    this.#removePidFile();
    await this.#hook("onExit", this.#master());
    return this.#exitCode;
  }

  /** Starts the metrics endpoint, once: when all workers are first ready or after a delay. */
  async #startServices(): Promise<void> {
    if (this.#servicesStarted) return;
    this.#servicesStarted = true;
    clearTimeout(this.#servicesTimer);
    const bind = this.#settings.values.metrics_bind as string | null;
    if (bind === null || this.#stopping) return;
    try {
      const { startMetricsServer } = await import("../export/http_server.ts");
      this.#server = await startMetricsServer({
        bind,
        metrics: () => this.metricsText(),
        status: () => this.status(),
        onError: (e) => this.#log.error("Metrics endpoint failed: {error}", { error: e.message }),
      });
      const { host, port } = this.#server.address;
      const shown = host.includes(":") ? `[${host}]` : host;
      this.#log.info("Serving metrics at http://{addr}/metrics", { addr: `${shown}:${port}` });
    } catch (e) {
      this.#log.error("{error}; stopping", { error: (e as Error).message });
      this.#stop("quick", EXIT_FAILURE);
    }
  }

  #newSlot(id: number): Slot {
    return {
      id,
      spawns: 0,
      restarts: 0,
      bootFailures: 0,
      crashes: 0,
      lastCrashAt: -Infinity,
      backoffUntil: 0,
    };
  }

  #writePidFile(): boolean {
    const path = this.#settings.values.pid_file as string | null;
    if (path === null) return true;
    try {
      writeFileSync(path, `${process.pid}\n`);
      this.#pidFile = path;
      return true;
    } catch (e) {
      this.#log.error("Cannot write pid file {path}: {error}", {
        path,
        error: (e as Error).message.split("\n")[0],
      });
      return false;
    }
  }

  #removePidFile(): void {
    if (this.#pidFile === undefined) return;
    try {
      rmSync(this.#pidFile, { force: true });
    } catch {
      // Removing a pid file is best effort at exit.
    }
  }

  // ---- events ---------------------------------------------------------------

  async #handle(event: Event): Promise<void> {
    switch (event.kind) {
      case "signal":
        return await this.#onSignal(event.signal);
      case "exit":
        return await this.#onExit(event.worker);
      case "ready":
        return await this.#onReady(event.worker);
      case "tick":
        return this.#onTick();
      case "services":
        return await this.#startServices();
    }
  }

  async #onSignal(signal: SignalName): Promise<void> {
    this.#log.info("Received {signal}", { signal });
    switch (signal) {
      case "SIGTERM":
        return this.#stop("graceful");
      case "SIGINT":
      case "SIGQUIT":
        return this.#stop("quick");
      case "SIGHUP":
        return await this.#reload();
      case "SIGTTIN":
        if (this.#stopping || this.#once) return;
        return this.#scaleTo(this.#workerCount + 1);
      case "SIGTTOU":
        if (this.#stopping || this.#once) return;
        if (this.#workerCount <= 1) {
          this.#log.info("Not going below one worker");
          return;
        }
        return this.#scaleTo(this.#workerCount - 1);
      case "SIGUSR1":
        this.#o.reopenLogs?.();
        return;
    }
  }

  async #onReady(w: WorkerHandle): Promise<void> {
    const slot = this.#slots.get(w.slot);
    this.#log.info("Worker {slot} (pid {pid}, generation {gen}) ready{addr} in {ms} ms", {
      slot: w.slot,
      pid: w.pid,
      gen: w.generation,
      addr: w.addr ? ` on ${w.addr}` : "",
      ms: Math.round((w.readyAt ?? 0) - w.spawnedAt),
    });
    if (!slot) return;
    slot.bootFailures = 0;
    if (slot.next === w) {
      // The new generation listens: retire the old one (zero downtime).
      const old = slot.current;
      const reason = slot.nextReason ?? "reload";
      slot.current = w;
      slot.next = undefined;
      slot.nextReason = undefined;
      // The old one died meanwhile (crash, timeout): that is what this replaces.
      this.#countRestart(slot, slot.pendingReason ?? reason);
      slot.pendingReason = undefined;
      if (old && old.phase !== "exited") this.#retire(old, reason);
    }
    if (!this.#booted && [...this.#slots.values()].every((s) => s.current?.phase === "ready")) {
      this.#booted = true;
      this.#log.info("All {n} worker(s) ready", { n: this.#slots.size });
      await this.#startServices();
      await this.#hook("whenReady", this.#master());
      await this.#sweepChannels();
      await this.#o.runtime.releaseStartupMemory();
    }
  }

  /** Once booted, removes the sockets that killed masters left beside this one's. */
  async #sweepChannels(): Promise<void> {
    if (this.#channel === undefined) return;
    const removed = await sweepStaleChannels(this.#channel.path);
    if (removed.length > 0) {
      this.#log.info("Removed {n} channel socket(s) left by masters that were killed: {paths}", {
        n: removed.length,
        paths: removed.join(", "),
      });
    }
  }

  async #onExit(w: WorkerHandle): Promise<void> {
    const status = describeExit(w.exitCode, w.exitSignal);
    const slot = this.#slots.get(w.slot);
    const wasCurrent = slot?.current === w;
    const wasNext = slot?.next === w;
    const planned = w.stopReason !== undefined;
    this.#retiring.delete(w);
    if (wasCurrent) slot!.current = undefined;
    if (wasNext) slot!.next = undefined;
    if (!this.#liveInSlot(w.slot)) this.#aggregator.removeWorker(w.slot);
    await this.#hook("childExit", this.#describe(w));

    if (this.#once) {
      this.#onceResult = w.exitSignal ? 128 + signalNumber(w.exitSignal) : (w.exitCode ?? 1);
      this.#log.info("Program exited with {status}", { status });
      if (!this.#stopping) this.#stop("graceful");
      return;
    }
    if (this.#stopping) {
      this.#log.info("Worker {slot} (pid {pid}) exited with {status}", {
        slot: w.slot,
        pid: w.pid,
        status,
      });
      return;
    }

    const everReady = w.readyAt !== undefined;
    if (!everReady && !planned) {
      const line = `Worker ${w.slot} failed to boot: exited with ${status} before it was ready`;
      if (!this.#booted) {
        this.#log.error("{line}; stopping", { line });
        this.#stop("quick", EXIT_BOOT_FAILURE);
        return;
      }
      if (wasNext) {
        // The new generation cannot boot: keep the old one serving, and retry a
        // recycle only after a backoff, so broken code on disk is no spawn loop.
        this.#rollQueue = [];
        if (slot) {
          slot.nextReason = undefined;
          slot.bootFailures++;
          slot.backoffUntil = performance.now() + backoffDelay(slot.bootFailures);
        }
        this.#log.error("{line}; keeping generation {gen} in slot {slot}", {
          line,
          gen: slot?.current?.generation ?? "-",
          slot: w.slot,
        });
        return;
      }
      if (slot) {
        slot.bootFailures++;
        if (slot.bootFailures >= MAX_BOOT_FAILURES) {
          this.#log.error("{line}, {n} times in a row; stopping", {
            line,
            n: slot.bootFailures,
          });
          this.#stop("quick", EXIT_BOOT_FAILURE);
          return;
        }
        this.#backoff(slot, `${line}`);
      }
      return;
    }
    if (!wasCurrent) {
      this.#log.info("Worker {slot} (pid {pid}) exited with {status}", {
        slot: w.slot,
        pid: w.pid,
        status,
      });
      return;
    }
    if (slot && !planned) {
      const oom = w.exitSignal === "SIGKILL"
        ? " (SIGKILL: killed by the OOM killer or by hand?)"
        : "";
      this.#backoff(slot, `Worker ${w.slot} (pid ${w.pid}) crashed: exited with ${status}${oom}`);
      slot.pendingReason = "crash";
    } else if (slot) {
      slot.pendingReason = (w.stopReason as RestartReason) ?? "crash";
      this.#log.info("Worker {slot} (pid {pid}) exited with {status} ({reason})", {
        slot: w.slot,
        pid: w.pid,
        status,
        reason: w.stopReason,
      });
    }
  }

  /**
   * Delays the slot's respawn: none for a first crash (a replacement should
   * answer as fast as the runtime starts), then doubling up to a cap while
   * crashes or boot failures follow each other.
   */
  #backoff(slot: Slot, line: string): void {
    const now = performance.now();
    slot.crashes = now - slot.lastCrashAt < CRASH_WINDOW_MS ? slot.crashes + 1 : 1;
    slot.lastCrashAt = now;
    const delay = backoffDelay(Math.max(slot.crashes - 1, slot.bootFailures));
    slot.backoffUntil = now + delay;
    this.#log.warn("{line}; respawning in {ms} ms", { line, ms: delay });
  }

  #onTick(): void {
    const now = performance.now();
    if (this.#stopping) {
      if (now >= this.#stopDeadline) {
        for (const w of this.#allWorkers()) w.signal("SIGKILL");
      }
      return;
    }
    const timeoutMs = seconds(this.#settings, "timeout");
    for (const w of this.#allWorkers()) {
      if (w.phase === "starting") {
        const age = now - w.spawnedAt;
        const reporting = w.managed || w.expectsHello;
        if (!reporting && age >= UNMANAGED_READY_MS) w.markReady();
        else if (reporting && age >= MANAGED_READY_MS) {
          this.#log.warn(
            "Worker {slot} reported no ready server in {s} s; taking it as ready",
            { slot: w.slot, s: MANAGED_READY_MS / 1000 },
          );
          w.markReady();
        }
      }
      // Heartbeat: only workers that speak the protocol can be judged silent.
      if (
        timeoutMs > 0 && w.managed && w.phase === "ready" && now - w.lastSeen > timeoutMs &&
        w.stopReason === undefined
      ) {
        this.#log.error("Worker {slot} (pid {pid}) sent nothing for {s} s: killing it", {
          slot: w.slot,
          pid: w.pid,
          s: Math.round((now - w.lastSeen) / 1000),
        });
        w.kill("timeout", KILL_GRACE_MS);
      }
    }
  }

  // ---- actions --------------------------------------------------------------

  *#allWorkers(): Generator<WorkerHandle> {
    for (const s of this.#slots.values()) {
      if (s.current) yield s.current;
      if (s.next) yield s.next;
    }
    yield* this.#retiring;
  }

  #liveInSlot(slot: number): boolean {
    for (const w of this.#allWorkers()) if (w.slot === slot && w.phase !== "exited") return true;
    return false;
  }

  #countRestart(slot: Slot, reason: RestartReason): void {
    slot.restarts++;
    this.#restarts[reason]++;
  }

  #retire(w: WorkerHandle, reason: string): void {
    this.#retiring.add(w);
    w.shutdown(seconds(this.#settings, "graceful_timeout"), reason);
  }

  async #spawn(slot: Slot): Promise<WorkerHandle> {
    slot.spawns++;
    const generation = slot.spawns;
    if (this.#o.hooks.preFork) {
      await this.#hook("preFork", { slot: slot.id, generation, pid: null });
    }
    const env: Record<string, string> = {
      ...this.#o.env,
      ...this.#plan.env,
      FORKLIFT_MASTER_PID: String(process.pid),
      FORKLIFT_WORKER_ID: String(slot.id),
      FORKLIFT_WORKERS: String(this.#workerCount),
    };
    const argv = this.#plan.argv;
    const channel = this.#openChannel();
    if (channel !== undefined) {
      env.FORKLIFT_CHANNEL = channel.server.path;
      env.FORKLIFT_CHANNEL_TOKEN = channel.token;
    }
    const spawnOptions = {
      env,
      cwd: this.#o.cwd,
      // --once behaves as the program itself (same process group, stdin); otherwise
      // workers get their own group so a terminal's Ctrl-C reaches only the master,
      // which asks for a final harvest before anything is signalled.
      inheritStdin: this.#once,
      detached: !this.#once,
      channel,
    };
    const w = new WorkerHandle(
      (on) => spawnWorkerProcess(argv, spawnOptions, on),
      slot.id,
      generation,
      {
        welcome: (h) => this.#welcome(h),
        ready: (h) => this.#enqueue({ kind: "ready", worker: h }),
        harvest: (h, m) => this.#onHarvest(h, m),
        progress: (h) => this.#onProgress(h),
        invalid: (h, reason) => {
          this.#invalid++;
          this.#log.warn("Dropped an invalid message from worker {slot}: {reason}", {
            slot: h.slot,
            reason,
          });
        },
        exit: (h) => this.#enqueue({ kind: "exit", worker: h }),
      },
      {
        prefix: () => this.#workerCount > 1,
        json: () => this.#settings.values.log_format === "json",
      },
      this.#o.write,
    );
    w.expectsHello = channel !== undefined;
    const maxRequests = this.#settings.values.max_requests as number;
    const jitter = this.#settings.values.max_requests_jitter as number;
    w.requestLimit = maxRequests > 0 ? maxRequests + Math.floor(Math.random() * (jitter + 1)) : 0;
    // Logged once every slot being filled now has its process: the first log
    // line costs milliseconds that the next worker's start should not wait for.
    queueMicrotask(() =>
      this.#log.info("Booting worker {slot} (generation {gen}) with pid {pid}", {
        slot: slot.id,
        gen: generation,
        pid: w.pid,
      })
    );
    if (this.#o.hooks.postFork) await this.#hook("postFork", this.#describe(w));
    return w;
  }

  /** The socket channel and a fresh token for the next worker, when the plan asks for one. */
  #openChannel(): { server: ChannelServer; token: string } | undefined {
    const path = this.#plan.channel;
    if (path === undefined || this.#channelFailed) return undefined;
    if (this.#channel === undefined) {
      try {
        this.#channel = listenChannel(path);
      } catch (e) {
        // Workers then find no socket named and use the Node IPC channel.
        this.#channelFailed = true;
        this.#log.warn("Cannot listen on {path} ({error}); Deno workers use Node IPC instead", {
          path,
          error: String((e as Error)?.message ?? e),
        });
        return undefined;
      }
    }
    return { server: this.#channel, token: channelToken() };
  }

  #welcome(w: WorkerHandle) {
    const harvestMs = Math.round(seconds(this.#settings, "harvest_interval"));
    const timeoutMs = seconds(this.#settings, "timeout");
    // Heartbeats often enough that one late beat never trips the timeout.
    const heartbeatMs = timeoutMs > 0
      ? Math.max(50, Math.min(harvestMs, Math.round(timeoutMs / 4)))
      : 0;
    return {
      worker: w.slot,
      generation: w.generation,
      harvest_interval_ms: harvestMs,
      heartbeat_ms: heartbeatMs,
      resource: {
        "service.name": this.#o.serviceName,
        "service.instance.id": `${process.pid}-${w.slot}`,
        "process.pid": String(w.pid ?? ""),
      },
      reuse_port: true,
    };
  }

  #onHarvest(w: WorkerHandle, m: HarvestMessage): void {
    this.#harvests++;
    this.#dropped += (m.dropped ?? 0) + this.#aggregator.merge(w.slot, m.metrics);
  }

  #onProgress(w: WorkerHandle): void {
    if (w.requestLimit === 0 || w.requests < w.requestLimit || w.stopReason !== undefined) return;
    // Already queued or rolling; the old generation keeps serving meanwhile.
    if (this.#stopping || this.#rollQueue.some((r) => r.slot === w.slot)) return;
    const slot = this.#slots.get(w.slot);
    if (!slot || slot.current !== w || slot.next) return;
    this.#log.info("Worker {slot} served {n} requests (limit {limit}): recycling it", {
      slot: w.slot,
      n: w.requests,
      limit: w.requestLimit,
    });
    this.#rollQueue.push({ slot: w.slot, reason: "max_requests" });
    this.#enqueue({ kind: "tick" });
  }

  async #reload(): Promise<void> {
    if (this.#stopping) return;
    let next: ResolvedSettings;
    try {
      next = this.#o.reloadSettings();
    } catch (e) {
      this.#log.error("Reload failed, keeping the running configuration: {error}", {
        error: (e as Error).message,
      });
      return;
    }
    this.#settings = next;
    this.#plan = this.#o.plan(next);
    this.#o.reconfigureLogging?.(next);
    await this.#hook("onReload", this.#master());
    const want = this.#workerCount;
    this.#log.info("Reloading: rolling {n} worker(s)", { n: want });
    // Slots a changed `workers` adds start on the new configuration already:
    // only the ones that were running roll.
    const running = [...this.#slots.keys()].filter((id) => id <= want).sort((a, b) => a - b);
    this.#scaleTo(want, false);
    this.#rollQueue = running.map((slot) => ({ slot, reason: "reload" as const }));
  }

  #scaleTo(n: number, count = true): void {
    const target = Math.max(1, n);
    this.#settings = {
      ...this.#settings,
      values: { ...this.#settings.values, workers: target },
    };
    const ids = [...this.#slots.keys()].sort((a, b) => a - b);
    for (const id of ids) {
      if (id <= target) continue;
      const slot = this.#slots.get(id)!;
      this.#slots.delete(id);
      this.#rollQueue = this.#rollQueue.filter((r) => r.slot !== id);
      let live = false;
      for (const w of [slot.current, slot.next]) {
        if (w && w.phase !== "exited") {
          live = true;
          this.#retire(w, "scale");
        }
      }
      // One slot removed is one count, even when it was mid-roll (two workers).
      if (count && live) this.#restarts.scale++;
    }
    for (let id = 1; id <= target; id++) {
      if (this.#slots.has(id)) continue;
      const slot = this.#newSlot(id);
      if (count) slot.pendingReason = "scale";
      this.#slots.set(id, slot);
    }
    this.#log.info("Workers: {n}", { n: target });
  }

  /** Spawns what is missing and advances the rolling replacement. */
  async #manage(): Promise<void> {
    if (this.#stopping) {
      if (this.#noneLeft()) this.#finishStop();
      return;
    }
    const now = performance.now();
    const spawns: Promise<void>[] = [];
    for (const slot of this.#slots.values()) {
      if (slot.current || slot.next || now < slot.backoffUntil) continue;
      spawns.push((async () => {
        const reason = slot.pendingReason;
        slot.pendingReason = undefined;
        slot.current = await this.#spawn(slot);
        if (reason) this.#countRestart(slot, reason);
      })());
    }
    await Promise.all(spawns);
    // Rolling: one slot at a time gets a new generation; the old one retires on
    // ready. The old one is not marked as stopping before then: if the new one
    // cannot boot, the old one must stay fully supervised (heartbeat, recycling).
    const busy = [...this.#slots.values()].some((s) => s.next !== undefined);
    const at = this.#rollQueue.findIndex((r) =>
      (this.#slots.get(r.slot)?.backoffUntil ?? 0) <= now
    );
    if (!busy && at >= 0) {
      const [{ slot: id, reason }] = this.#rollQueue.splice(at, 1);
      const slot = this.#slots.get(id);
      if (
        slot?.current && slot.current.phase !== "exited" && slot.current.stopReason === undefined
      ) {
        slot.nextReason = reason;
        slot.next = await this.#spawn(slot);
      }
    }
  }

  #stop(mode: "graceful" | "quick", code?: number): void {
    if (code !== undefined) this.#exitCodeOnStop = code;
    if (this.#stopping === "quick" || (this.#stopping === "graceful" && mode === "graceful")) {
      return;
    }
    this.#stopping = mode;
    this.#rollQueue = [];
    const graceMs = seconds(this.#settings, "graceful_timeout");
    if (mode === "graceful") {
      this.#log.info("Stopping gracefully (up to {s} s)", { s: graceMs / 1000 });
      this.#stopDeadline = performance.now() + graceMs + 2000;
      for (const w of this.#allWorkers()) w.shutdown(graceMs, w.stopReason ?? "stop");
    } else {
      this.#log.info("Stopping quickly");
      // Ask for a final harvest first: a signal would lose what is not yet harvested.
      this.#stopDeadline = performance.now() + 1500;
      for (const w of this.#allWorkers()) {
        w.stopReason ??= "stop";
        if (w.managed) w.send({ type: "flush", v: 1 });
        w.killAfter(1500);
      }
      setTimeout(() => {
        for (const w of this.#allWorkers()) w.signal("SIGTERM");
      }, 300);
    }
    if (this.#noneLeft()) this.#finishStop();
  }

  #noneLeft(): boolean {
    for (const w of this.#allWorkers()) if (w.phase !== "exited") return false;
    return true;
  }

  #finishStop(): void {
    this.#exitCode = this.#exitCodeOnStop ?? this.#onceResult ?? 0;
  }

  // ---- exposition ------------------------------------------------------------

  /** The Prometheus exposition of the aggregate and the master's own metrics. */
  metricsText(): string {
    const master = masterMetrics({
      workers: [...this.#slots.values()].filter((s) => s.current?.phase === "ready").length,
      restarts: this.#restarts,
      harvests: this.#harvests,
      dropped: this.#dropped + this.#invalid,
    });
    return renderPrometheus([...master, ...this.#aggregator.collect()], {
      onSkip: (s) => void (this.#dropped += s.points),
    });
  }

  /** The `/status` document. */
  status(): StatusDocument {
    const workers: WorkerStatus[] = [];
    for (const w of this.#allWorkers()) {
      const slot = this.#slots.get(w.slot);
      workers.push({
        slot: w.slot,
        pid: w.pid,
        generation: w.generation,
        state: w.phase,
        spawned_at: w.spawnedWall.toISOString(),
        ready_at: w.readyAt === undefined
          ? null
          : new Date(w.spawnedWall.getTime() + (w.readyAt - w.spawnedAt)).toISOString(),
        handshake_ms: w.handshakeMs === undefined ? null : Math.round(w.handshakeMs * 10) / 10,
        last_harvest_at: w.lastHarvestWall?.toISOString() ?? null,
        last_seen_at: w.lastSeenWall?.toISOString() ?? null,
        requests: w.requests,
        restarts: slot?.restarts ?? 0,
        addr: w.addr ?? null,
        runtime: w.runtime ?? null,
        transitions: w.transitions,
      });
    }
    const reporter = (globalThis as Record<symbol, { stats?: () => { timersArmed: number } }>)[
      Symbol.for("forklift.reporter")
    ];
    return {
      pid: process.pid,
      version: VERSION,
      started_at: this.#startedAt.toISOString(),
      uptime_s: Math.round((Date.now() - this.#startedAt.getTime()) / 100) / 10,
      service_name: this.#o.serviceName,
      master_timers_armed: reporter?.stats?.().timersArmed ?? 0,
      workers,
      restarts_by_reason: { ...this.#restarts },
      totals: {
        workers: workers.filter((w) => w.state === "ready").length,
        requests: workers.reduce((n, w) => n + w.requests, 0),
        restarts: Object.values(this.#restarts).reduce((a, b) => a + b, 0),
        harvests: this.#harvests,
        dropped_points: this.#dropped + this.#invalid,
      },
    };
  }
}

const SIGNAL_NUMBERS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};

/**
 * The Linux number of a signal name, for the shell's 128+N exit status.
 *
 * @example
 * ```ts
 * import { signalNumber } from "./arbiter.ts";
 * console.assert(signalNumber("SIGKILL") === 9);
 * ```
 */
export function signalNumber(name: string): number {
  return SIGNAL_NUMBERS[name] ?? 0;
}
