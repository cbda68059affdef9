/**
 * The master's shell: one queue and one loop feed events (signals, worker
 * messages and exits, ticks) into the {@linkcode Supervisor} and carry out the
 * actions it answers with through the ports (spawner, clock, telemetry).
 * Signal listeners and worker callbacks only enqueue, as in gunicorn; harvests
 * alone go straight to telemetry, which merges them without any policy.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import process from "node:process";
import type { ResolvedSettings } from "../config/load.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { listenSignals } from "../runtime/signals.ts";
import { type Clock, systemClock } from "./clock.ts";
import { EXIT_USAGE, firstLine } from "../config/errors.ts";
import { LogThrottle, shorten } from "../log/throttle.ts";
import { formatHostPort } from "../protocol/host_port.ts";
import { EventQueue } from "./event_queue.ts";
import { EXIT_FAILURE } from "./exit_status.ts";
import { callHook, type Hooks, type MasterDescriptor, type WorkerDescriptor } from "./hooks.ts";
import { noticeLine } from "./notices.ts";
import { movePidFile, type PidFile, writePidFile } from "./pid_file.ts";
import type { MasterServices } from "./services.ts";
import type { WorkerSpawner } from "./spawner.ts";
import type { ZombieSweeper } from "./zombie_sweeper.ts";
import {
  type Notice,
  type PortShare,
  Supervisor,
  type SupervisorAction,
  supervisorConfig,
  type SupervisorEvent,
  type Timer,
  type WorkerRef,
} from "./supervisor.ts";
import { migrateReqWarning, readMigrateReq } from "./sysctl.ts";
import { statusLine, SystemdNotifier } from "./systemd.ts";
import type { SupervisionSnapshot, Telemetry } from "./telemetry.ts";
import type { WorkerEvents, WorkerHandle } from "./worker_handle.ts";

/** Everything the arbiter needs to run. */
export interface ArbiterOptions {
  runtime: Pick<Runtime, "onSignal" | "releaseStartupMemory" | "env">;
  settings: ResolvedSettings;
  /** Re-resolves the settings for a HUP reload; throws a ConfigError on bad input. */
  reloadSettings: () => ResolvedSettings;
  spawner: WorkerSpawner;
  /**
   * Builds the telemetry over a view of the supervision; it tells each
   * worker's sampled memory to `onMemory`, for `max_memory`.
   */
  telemetry: (
    snapshot: () => SupervisionSnapshot,
    onMemory: (workerId: number, bytes: number) => void,
  ) => Telemetry;
  clock?: Clock;
  hooks: Hooks;
  log: Logger;
  /** Reapplies log level and format after a reload. */
  reconfigureLogging?: (settings: ResolvedSettings) => void;
  /** USR1: reopen the log file. */
  reopenLogs?: () => void;
  /** Applies a reload to the hooks and the telemetry. */
  services?: Pick<MasterServices, "reload">;
}

type Unstamped<E> = E extends unknown ? Omit<E, "now"> : never;

/** A SIGINT this soon after another is the same key press, delivered twice. */
const REPEAT_INT_MS = 100;

/** At most one invalid-message line per worker this often. */
const INVALID_LOG_MS = 10_000;
/** The longest the loop sleeps without a tick. */
const TICK_MS = 500;
/** The least time the final OTLP export gets, however long the workers took to stop. */
const FINAL_EXPORT_MIN_MS = 1_000;

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
  #sup: Supervisor;
  #clock: Clock;
  #telemetry: Telemetry;
  #handles = new Map<number, WorkerHandle>();
  #systemd?: SystemdNotifier;
  #zombies?: ZombieSweeper;
  #queue: EventQueue<SupervisorEvent>;
  /** The supervisor's timers armed on the clock, by the function that cancels each. */
  #timers = new Map<() => void, Timer>();
  /** Workers gone whose app's leftover processes get SIGKILL later. */
  #leftovers = new Map<number, WorkerHandle>();
  #pidFile?: PidFile;
  #code?: number;
  /** When the stop began, on the clock. */
  #stoppingSince?: number;
  /** Log lines written once the loop is done with an event: a line costs a spawn milliseconds. */
  #deferred: Array<() => void> = [];
  #events: WorkerEvents;
  /** When each worker's last invalid message was logged, and how many were not since. */
  #invalidLogged = new LogThrottle(INVALID_LOG_MS);
  /** Each worker's one queued `seen`, brought up to date by what it says until taken. */
  #pendingSeen = new Map<number, Extract<SupervisorEvent, { type: "seen" }>>();
  /** Events still to take before a due deadline is judged; undefined when none is due. */
  #beforeDeadline?: number;

  constructor(options: ArbiterOptions) {
    this.#o = options;
    this.#settings = options.settings;
    this.#clock = options.clock ?? systemClock;
    this.#queue = new EventQueue(this.#clock);
    this.#sup = new Supervisor(supervisorConfig(options.settings.config));
    this.#telemetry = options.telemetry(
      () => this.#snapshot(),
      (workerId, bytes) => this.#enqueue({ type: "memory", workerId, bytes }),
    );
    this.#events = {
      hello: (w) => this.#enqueue({ type: "hello", workerId: w.id }),
      ready: (w) => this.#enqueue({ type: "ready", workerId: w.id }),
      seen: (w, requests) => this.#seen(w.id, requests),
      bye: (w) => this.#enqueue({ type: "bye", workerId: w.id }),
      exit: (w, code, signal) => this.#enqueue({ type: "exited", workerId: w.id, code, signal }),
      harvest: (w, m, isolate) => this.#telemetry.harvest(w, m, isolate),
      invalid: (w, reason) => {
        this.#telemetry.invalid(w);
        // A hostile or broken worker must not flood the log: one line per
        // worker every INVALID_LOG_MS, the reason cut short (it may quote the message).
        const more = this.#invalidLogged.admit(w.id, this.#clock.now());
        if (more === undefined) return;
        this.#log.warn("Dropped an invalid message from worker {slot}: {reason}{more}", {
          slot: w.slot,
          reason: shorten(reason),
          more,
        });
      },
    };
  }

  get #log(): Logger {
    return this.#o.log;
  }

  /** The supervision as it stands, for `/status` and the exposition. */
  #snapshot(): SupervisionSnapshot {
    const workers = this.#sup.workers().flatMap((view) => {
      const handle = this.#handles.get(view.worker.id);
      return handle ? [{ view, handle }] : [];
    });
    // One offset for the whole snapshot: times of the same instant read alike.
    const offset = Date.now() - this.#clock.now();
    return {
      phase: this.#sup.phase.name,
      workerCount: this.#sup.workerCount,
      readyWorkers: this.#sup.readyCount,
      restarts: this.#sup.restarts,
      workers,
      wallTime: (at) => new Date(offset + at),
    };
  }

  #master(): MasterDescriptor {
    return { pid: process.pid, workers: this.#sup.workerCount, command: this.#o.spawner.argv };
  }

  #describe(handle: WorkerHandle, reason?: string): WorkerDescriptor {
    const { slot, generation, pid, exitCode, exitSignal: signal } = handle;
    return { slot, generation, pid, exitCode, signal, reason };
  }

  #hook<K extends keyof Hooks>(name: K, arg: Parameters<NonNullable<Hooks[K]>>[0]) {
    if (!this.#o.hooks[name]) return;
    // What happened before the hook is logged before anything it logs.
    this.#flushLog();
    return callHook(this.#o.hooks, name, arg, this.#log);
  }

  #enqueue(event: Unstamped<SupervisorEvent>): void {
    this.#queue.push({ ...event, now: this.#clock.now() } as SupervisorEvent);
  }

  /**
   * A worker's messages as one queued event: however fast it talks, it holds
   * one place in the queue, and the supervisor hears its latest time and count.
   */
  #seen(workerId: number, requests?: number): void {
    const now = this.#clock.now();
    const pending = this.#pendingSeen.get(workerId);
    if (pending !== undefined) {
      pending.now = now;
      if (requests !== undefined) pending.requests = requests;
      return;
    }
    const event = { type: "seen" as const, workerId, now, requests };
    this.#pendingSeen.set(workerId, event);
    this.#queue.push(event);
  }

  /**
   * The next event, or a tick at the next deadline (TICK_MS at most). A due
   * deadline is judged once what had arrived by then is read and taken (a
   * heartbeat waiting in the queue is no silence), and no later: what
   * arrives meanwhile waits for the tick, so a busy queue never holds it back.
   */
  async #next(): Promise<SupervisorEvent> {
    const at = this.#sup.wakeAt() ?? Infinity;
    if (at <= this.#clock.now()) {
      if (this.#beforeDeadline === undefined) {
        // One turn of the event loop: messages already in the pipes are read.
        await new Promise<void>((resolve) => this.#clock.after(0, resolve));
        this.#beforeDeadline = this.#queue.length;
      }
      if (this.#beforeDeadline > 0) {
        this.#beforeDeadline--;
        return this.#queue.shift()!;
      }
      this.#beforeDeadline = undefined;
      return { type: "tick", now: this.#clock.now() };
    }
    this.#beforeDeadline = undefined;
    const ms = Math.min(TICK_MS, Math.ceil(at - this.#clock.now()));
    return await this.#queue.next(ms, () => ({ type: "tick", now: this.#clock.now() }));
  }

  /** Starts everything and resolves to the exit code once the master stops. */
  async run(): Promise<number> {
    const onStarting = this.#o.hooks.onStarting;
    if (onStarting) {
      try {
        await onStarting(this.#master());
      } catch (e) {
        this.#log.error("Hook onStarting failed, not starting: {error}", { error: firstLine(e) });
        return EXIT_USAGE;
      }
    }
    const pidPath = this.#settings.config.pidFile;
    try {
      if (pidPath !== null) this.#pidFile = writePidFile(pidPath, process.pid);
    } catch (e) {
      this.#log.error("Cannot write pid file {path}: {error}", {
        path: pidPath,
        error: firstLine(e),
      });
      return EXIT_FAILURE;
    }
    let lastInt = -Infinity;
    const unlisten = listenSignals(this.#o.runtime, (signal) => {
      // One Ctrl-C under `deno task` arrives twice: from the terminal, and
      // forwarded by deno task. Within a moment, the second is the same press.
      if (signal === "SIGINT") {
        const now = this.#clock.now();
        if (now - lastInt < REPEAT_INT_MS) return;
        lastInt = now;
      }
      this.#enqueue({ type: "signal", signal });
    });
    const bind = this.#settings.config.metricsBind;
    if (bind !== null) {
      // Found now, not once the workers run: a taken metrics port is a usage error.
      try {
        await this.#telemetry.checkBind(bind);
      } catch (e) {
        unlisten();
        this.#pidFile?.remove();
        this.#log.error("{error}", { error: firstLine(e) });
        return EXIT_USAGE;
      }
    }
    await this.#openSystemd();
    // PID 1 (a container's entry point) inherits every orphan, and must wait for each.
    if (process.pid === 1) {
      const { ZombieSweeper } = await import("./zombie_sweeper.ts");
      this.#zombies = await ZombieSweeper.start(this.#log, this.#clock);
    }
    await this.#o.spawner.prepare();
    // Workers first: they boot while the master sets up the rest.
    await this.#dispatch({ type: "start", now: this.#clock.now() });
    this.#flushLog();
    if (this.#sup.phase.name === "booting") {
      this.#log.info("Started {n} worker(s): {argv}", {
        n: this.#sup.workerCount,
        argv: this.#o.spawner.argv.join(" "),
      });
      if (this.#sup.workerCount > 1 && readMigrateReq() === 0) this.#log.warn(migrateReqWarning());
    }
    while (this.#code === undefined) {
      const event = await this.#next();
      if (event.type === "seen") this.#pendingSeen.delete(event.workerId);
      if (event.type === "signal") this.#log.info("Received {signal}", { signal: event.signal });
      await this.#dispatch(event);
      this.#flushLog();
    }
    unlisten();
    // What an exited worker's app left behind still gets its SIGKILL if the
    // master is still there (its final export): it must not outlive the stop.
    for (const [cancel, timer] of this.#timers) if (timer.name !== "killGroup") cancel();
    this.#log.info("Master exiting with code {code}", { code: this.#code });
    // graceful_timeout bounds the whole stop (an orchestrator's SIGKILL comes
    // then): the final export gets what the workers left of it.
    const spent = this.#clock.now() - (this.#stoppingSince ?? this.#clock.now());
    const { gracefulMs } = supervisorConfig(this.#settings.config);
    await this.#telemetry.close(Math.max(FINAL_EXPORT_MIN_MS, gracefulMs - spent));
    this.#o.spawner.close();
    this.#systemd?.close();
    this.#zombies?.stop();
    this.#pidFile?.remove();
    await this.#hook("onExit", this.#master());
    return this.#code;
  }

  /** Feeds one event to the supervisor and carries out its actions, in order. */
  async #dispatch(event: SupervisorEvent): Promise<void> {
    const goneId = event.type === "exited" ? event.workerId : undefined;
    const exited = goneId === undefined ? undefined : this.#handles.get(goneId);
    if (goneId !== undefined && exited !== undefined) {
      // Before its replacement exists, as gunicorn's child_exit.
      const reason = this.#sup.worker(goneId)?.reason;
      await this.#hook("childExit", this.#describe(exited, reason));
    }
    for (const action of this.#sup.dispatch(event)) {
      try {
        await this.#act(action);
      } catch (e) {
        this.#say("error", "Cannot carry out {action}: {error}", {
          action: action.type,
          error: firstLine(e),
        });
      }
    }
    if (goneId !== undefined && exited !== undefined) {
      this.#handles.delete(goneId);
      this.#leftovers.set(goneId, exited);
      this.#invalidLogged.forget(goneId);
    }
  }

  async #act(a: SupervisorAction): Promise<void> {
    const handle = "worker" in a ? this.#handles.get(a.worker.id) : undefined;
    switch (a.type) {
      case "spawn":
        return await this.#spawn(a.worker, a.heartbeatMs);
      case "shutdown":
        if (!handle?.send({ type: "shutdown", v: 1, graceful_ms: Math.round(a.gracefulMs) })) {
          handle?.signal("SIGTERM");
        }
        return;
      case "flush":
        handle?.send({ type: "flush", v: 1 });
        return;
      case "signal":
        return handle?.signal(a.signal);
      case "signalGroup": {
        // The exit being handled still has its handle; later ones wait in the leftovers.
        const gone = handle ?? this.#leftovers.get(a.worker.id);
        gone?.signalGroup(a.signal);
        if (a.signal === "SIGKILL") this.#leftovers.delete(a.worker.id);
        return;
      }
      case "timer": {
        const { timer } = a;
        const cancel = this.#clock.after(Math.max(0, a.at - this.#clock.now()), () => {
          this.#timers.delete(cancel);
          if (this.#code === undefined) return this.#enqueue({ type: "due", timer });
          // The loop is over: the supervisor decided this one already.
          if (timer.name === "killGroup") {
            this.#leftovers.get(timer.worker.id)?.signalGroup("SIGKILL");
          }
        });
        this.#timers.set(cancel, timer);
        return;
      }
      case "checkPort":
        return this.#enqueue({ type: "portChecked", shared: this.#portShare() });
      case "startServices":
        return await this.#startServices();
      case "whenReady":
        return await this.#whenReady();
      case "forget":
        return this.#telemetry.forget(a.worker, handle?.requests);
      case "reload":
        return await this.#reload();
      case "reopenLogs":
        return this.#o.reopenLogs?.();
      case "notify": {
        // Worded now, while the worker's handle is still known; written once
        // the event is done, so that a respawn does not wait for a log line.
        const line = noticeLine(a.notice, (w) => this.#handles.get(w.id));
        this.#say(line.level, line.message, line.props);
        this.#tellSystemd(a.notice);
        if (a.notice.kind === "stopping") this.#stoppingSince ??= this.#clock.now();
        return;
      }
      case "exit":
        this.#code = a.code;
        return;
    }
  }

  /** Logs once the loop is done with the current event (or before a hook runs). */
  #say(level: "info" | "warn" | "error", message: string, props: Record<string, unknown> = {}) {
    this.#deferred.push(() => this.#log[level](message, props));
  }

  #flushLog(): void {
    for (const line of this.#deferred.splice(0)) line();
  }

  async #spawn(ref: WorkerRef, heartbeatMs: number): Promise<void> {
    const { slot, generation } = ref;
    if (this.#o.hooks.preFork) await this.#hook("preFork", { slot, generation, pid: null });
    let spawned;
    try {
      const how = { workers: () => this.#sup.workerCount, heartbeatMs };
      spawned = this.#o.spawner.spawn(ref, how, this.#events);
    } catch (e) {
      // The outcome of an action is an event like any other: the supervisor
      // hears it once the batch it belongs to is carried out.
      return this.#enqueue({ type: "spawnFailed", workerId: ref.id, error: firstLine(e) });
    }
    const { handle, expectsHello, requestLimit, isolates } = spawned;
    this.#handles.set(ref.id, handle);
    this.#say("info", "Booting worker {slot} (generation {gen}) with pid {pid}", {
      slot,
      gen: generation,
      pid: handle.pid,
    });
    this.#enqueue({ type: "spawned", workerId: ref.id, expectsHello, requestLimit, isolates });
    if (this.#o.hooks.postFork) await this.#hook("postFork", this.#describe(handle));
  }

  async #reload(): Promise<void> {
    let next: ResolvedSettings;
    try {
      next = this.#o.reloadSettings();
    } catch (e) {
      this.#say("error", "Reload failed, keeping the running configuration: {error}", {
        error: firstLine(e),
      });
      return;
    }
    next = await this.#o.services?.reload(this.#settings, next, this.#telemetry) ?? next;
    const moved = movePidFile(this.#pidFile, next.config.pidFile, process.pid);
    this.#pidFile = moved.file;
    if (moved.error !== undefined) {
      this.#say("error", "Cannot write pid file {path}, keeping {old}: {error}", {
        path: next.config.pidFile,
        old: moved.file?.path ?? "none",
        error: firstLine(moved.error),
      });
    }
    this.#settings = next;
    this.#o.spawner.configure(next);
    this.#o.reconfigureLogging?.(next);
    await this.#hook("onReload", this.#master());
    const config = supervisorConfig(next.config);
    this.#enqueue({ type: "reloaded", config });
  }

  /** Every worker is ready and serves alone on its port. */
  async #whenReady(): Promise<void> {
    this.#flushLog();
    await this.#hook("whenReady", this.#master());
    try {
      const paths = await this.#o.spawner.sweep();
      if (paths.length > 0) {
        this.#say(
          "info",
          "Removed {n} channel socket(s) left by masters that were killed: {paths}",
          {
            n: paths.length,
            paths: paths.join(", "),
          },
        );
      }
    } catch (e) {
      this.#say("warn", "Cannot sweep stale channel sockets: {error}", { error: firstLine(e) });
    }
    await this.#o.runtime.releaseStartupMemory();
  }

  /** Under systemd `Type=notify` (`NOTIFY_SOCKET` set): the socket to report to. */
  async #openSystemd(): Promise<void> {
    const env = this.#o.runtime.env();
    if (!env.NOTIFY_SOCKET) return;
    const { openSystemdSocket } = await import("../runtime/sd_notify.ts");
    const socket = await openSystemdSocket(env.NOTIFY_SOCKET);
    if (socket === undefined) {
      this.#log.warn(
        "NOTIFY_SOCKET is set but the C library cannot be called from here: systemd will not hear READY=1 (use Type=exec)",
      );
      return;
    }
    this.#systemd = new SystemdNotifier(socket);
    this.#systemd.startWatchdog(env, process.pid);
  }

  #tellSystemd(notice: Notice): void {
    const sd = this.#systemd;
    if (sd === undefined) return;
    const status = statusLine(this.#sup.readyCount, this.#sup.workerCount);
    switch (notice.kind) {
      case "booted":
      case "reloaded":
        return sd.ready(status);
      case "reloading":
        return sd.reloading(status);
      case "stopping":
        return sd.stopping(status);
      case "ready":
      case "exited":
      case "scaled":
      case "crashed":
        return sd.status(status);
    }
  }

  /**
   * Another program listening on the workers' port, if any: they bind with
   * SO_REUSEPORT and would silently share its traffic. What to do about it is
   * the supervisor's to decide.
   */
  #portShare(): PortShare | undefined {
    const pids = [...this.#handles.values()].flatMap((h) => (h.pid === null ? [] : [h.pid]));
    const ports = new Set<number>();
    for (const h of this.#handles.values()) {
      const m = /^(?!unix:).*:(\d+)$/.exec(h.addr ?? "");
      if (m) ports.add(Number(m[1]));
    }
    for (const port of ports) {
      const listeners = this.#o.spawner.foreignListeners(port, pids);
      if (listeners.length > 0) return { port, listeners };
    }
    return undefined;
  }

  /** Starts the metrics endpoint and the OTLP export (the supervisor says when: once). */
  async #startServices(): Promise<void> {
    const bind = this.#settings.config.metricsBind;
    this.#telemetry.startExport();
    if (bind === null) return;
    try {
      const { host, port } = await this.#telemetry.serve(bind);
      this.#say("info", "Serving metrics at http://{addr}/metrics", {
        addr: formatHostPort(host, port),
      });
    } catch (e) {
      this.#say("error", "{error}; stopping", { error: firstLine(e) });
      this.#enqueue({ type: "fail", code: EXIT_FAILURE });
    }
  }
}
