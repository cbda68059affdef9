/**
 * The master's supervision policy as a pure state machine: slots and
 * generations, boot-failure detection, crash backoff, the rolling replacement
 * queue (HUP, max_requests, max_memory), scaling, heartbeat deadlines, graceful and quick
 * stop, when the services start and what a shared port means, and the
 * `--once` exit status. It does no I/O and reads no clock: every event
 * carries its time, and {@linkcode Supervisor.dispatch} answers with the
 * actions the arbiter carries out (timers included, which come back as
 * events). Its vocabulary is in `supervisor_events.ts`.
 *
 * @module
 */
import { workerCount } from "../config/derived.ts";
import { EXIT_USAGE } from "../config/errors.ts";
import type { SignalName } from "../runtime/runtime.ts";
import {
  dueSignals,
  earliestDeadline,
  endProcess,
  KILL_GRACE_MS,
  MANAGED_READY_MS,
  QUICK_KILL_MS,
  QUICK_TERM_MS,
  RETIRE_GRACE_MS,
  UNMANAGED_READY_MS,
} from "./deadlines.ts";
import { EXIT_BOOT_FAILURE, exitStatus } from "./exit_status.ts";
import { judgeMemory } from "./memory_policy.ts";
import { afterBootFailure, backOff } from "./restart_policy.ts";
import { ServicesGate } from "./services_gate.ts";
import {
  type BootFailureCause,
  exitOf,
  type MasterPhase,
  noRestarts,
  type Notice,
  type PortShare,
  type RestartReason,
  type RollReason,
  type StopReason,
  type SupervisorAction,
  type SupervisorConfig,
  type SupervisorEvent,
  type Timer,
  type WorkerRef,
  type WorkerView,
} from "./supervisor_events.ts";
import { newRecord, newSlot, type Slot, viewOf, type WorkerRecord } from "./worker_record.ts";

export * from "./supervisor_events.ts";

/**
 * The supervision policy. Feed it events; carry out the actions it returns,
 * in order.
 *
 * @example Start two workers
 * ```ts
 * import assert from "node:assert/strict";
 * import { Supervisor } from "./supervisor.ts";
 * const config = { workers: 2, once: false, timeoutMs: 0, gracefulMs: 30_000, heartbeatMs: 0 };
 * const s = new Supervisor(config);
 * const actions = s.dispatch({ type: "start", now: 0 });
 * // One spawn at a time: the next once this one's outcome is told.
 * assert.equal(actions.filter((a) => a.type === "spawn").length, 1);
 * ```
 */
export class Supervisor {
  #config: SupervisorConfig;
  #phase: MasterPhase = { name: "booting" };
  /** A reload's roll is under way: `reloaded` is told once every slot took the new config. */
  #reloading = false;
  #slots = new Map<number, Slot>();
  /** Workers that left their slot and are draining. */
  #retiring = new Set<WorkerRecord>();
  #byId = new Map<number, WorkerRecord>();
  #nextId = 1;
  /** Slots waiting for a rolling replacement, in order. */
  #rollQueue: Array<{ slot: number; reason: RollReason }> = [];
  #restarts = noRestarts();
  /** The exit code a stop was asked to end with (boot failure, metrics endpoint). */
  #stopCode?: number;
  /** The program's own exit status, under `--once`. */
  #onceStatus?: number;
  #out: SupervisorAction[] = [];
  /**
   * The worker whose spawn was asked for and whose outcome (`spawned` or
   * `spawnFailed`) has not come back yet: the next spawn waits for it, so that
   * no process is started on a decision its predecessor's failure would change.
   */
  #launching?: WorkerRecord;
  #services = new ServicesGate();

  constructor(config: SupervisorConfig) {
    this.#config = { ...config };
  }

  /** The master's phase. */
  get phase(): MasterPhase {
    return this.#phase;
  }

  /** The number of slots wanted now (1 under `--once`). */
  get workerCount(): number {
    return workerCount(this.#config);
  }

  /** Restarts by reason since the start. */
  get restarts(): Readonly<Record<RestartReason, number>> {
    return this.#restarts;
  }

  /** Slots whose current worker is ready. */
  get readyCount(): number {
    return [...this.#slots.values()].filter((s) => s.current?.phase.name === "ready").length;
  }

  /** Every live worker: each slot's current and next, then the retiring ones. */
  workers(): WorkerView[] {
    return [...this.#live()].map((w) => this.#view(w));
  }

  /** One live worker, by id. */
  worker(id: number): WorkerView | undefined {
    const w = this.#byId.get(id);
    return w && this.#view(w);
  }

  #view(w: WorkerRecord): WorkerView {
    return viewOf(w, this.#slots.get(w.ref.slot)?.restarts ?? 0);
  }

  /**
   * The earliest time at which a `tick` has something to do, if any; at or
   * before `now` when one is due. Every deadline it names is one a tick acts
   * on and moves, so a due one never repeats.
   */
  wakeAt(): number | undefined {
    const stopping = this.#phase.name === "stopping";
    return earliestDeadline({
      live: this.#live(),
      watched: (w) => this.#watched(w),
      timeoutMs: this.#config.timeoutMs,
      stopping,
      // While a spawn's outcome is awaited, the next spawn waits for that event, not for time.
      slots: stopping || this.#launching !== undefined ? [] : [...this.#slots.values()],
      queued: (slot) => this.#rollQueue.some((r) => r.slot === slot),
    });
  }

  /** Takes one event and returns what to do about it. */
  dispatch(event: SupervisorEvent): SupervisorAction[] {
    if (this.#phase.name === "exited") return [];
    this.#out = [];
    this.#handle(event);
    this.#manage(event.now);
    const out = this.#out;
    this.#out = [];
    return out;
  }

  #handle(e: SupervisorEvent): void {
    if (e.type === "hello" || e.type === "ready" || e.type === "seen") {
      const w = this.#byId.get(e.workerId);
      if (w) w.lastSeen = e.now;
    }
    switch (e.type) {
      case "start":
        for (let id = 1; id <= this.workerCount; id++) this.#slots.set(id, newSlot(id));
        return void this.#out.push(...this.#services.start(e.now));
      case "spawned": {
        const w = this.#byId.get(e.workerId);
        if (w !== undefined && w === this.#launching) this.#launching = undefined;
        if (!w) return;
        // Its deadlines run from the moment its process exists, hooks and
        // earlier spawns of the same batch aside.
        w.spawnedAt = w.lastSeen = e.now;
        w.speech = e.expectsHello ? "expected" : "silent";
        w.requestLimit = e.requestLimit;
        w.isolates = e.isolates ?? 1;
        const slot = this.#slots.get(w.ref.slot);
        if (w.countAs && slot) this.#countRestart(slot, w.countAs);
        w.countAs = undefined;
        return;
      }
      case "spawnFailed":
        return this.#onExit(e.workerId, e.now, { spawn: e.error });
      case "hello": {
        const w = this.#byId.get(e.workerId);
        if (w) w.speech = "speaking";
        w?.transitions.push({ state: "hello", at: e.now });
        return;
      }
      case "ready":
        return this.#onReady(e.workerId, e.now);
      case "seen":
        return this.#onSeen(e.workerId, e.requests);
      case "memory":
        return this.#onMemory(e.workerId, e.bytes, e.now);
      case "bye":
        return this.#onBye(e.workerId, e.now);
      case "due":
        return this.#onDue(e.timer);
      case "portChecked":
        return this.#onPortChecked(e.shared, e.now);
      case "exited":
        return this.#onExit(e.workerId, e.now, { exit: { code: e.code, signal: e.signal } });
      case "signal":
        return this.#onSignal(e.signal, e.now);
      case "reloaded":
        return this.#onReloaded(e.config, e.now);
      case "fail":
        return this.#stop("quick", e.now, e.code);
      case "tick":
        return this.#onTick(e.now);
    }
  }

  #emit(action: SupervisorAction): void {
    this.#out.push(action);
  }

  #notify(notice: Notice): void {
    this.#out.push({ type: "notify", notice });
  }

  *#live(): Generator<WorkerRecord> {
    for (const s of this.#slots.values()) {
      if (s.current) yield s.current;
      if (s.roll) yield s.roll.next;
    }
    yield* this.#retiring;
  }

  #watched(w: WorkerRecord): boolean {
    return this.#config.timeoutMs > 0 && w.speech === "speaking" && w.phase.name === "ready";
  }

  // ---- events ---------------------------------------------------------------

  #onSignal(signal: SignalName, now: number): void {
    const stopping = this.#phase.name === "stopping";
    switch (signal) {
      case "SIGTERM":
        return this.#stop("graceful", now);
      case "SIGINT":
      case "SIGQUIT":
        return this.#stop("quick", now);
      case "SIGHUP":
        if (!stopping) this.#emit({ type: "reload" });
        return;
      case "SIGTTIN":
        if (!stopping && !this.#config.once) this.#scaleTo(this.workerCount + 1, now, true);
        return;
      case "SIGTTOU":
        if (stopping || this.#config.once) return;
        if (this.workerCount <= 1) return this.#notify({ kind: "atFloor" });
        return this.#scaleTo(this.workerCount - 1, now, true);
      case "SIGUSR1":
        return this.#emit({ type: "reopenLogs" });
    }
  }

  #onReloaded(config: SupervisorConfig, now: number): void {
    if (this.#phase.name === "stopping") return;
    this.#config = { ...config };
    const want = this.workerCount;
    this.#notify({ kind: "reloading", workers: want });
    // Slots a changed `workers` adds start on the new configuration already:
    // only the ones that were running roll.
    const running = [...this.#slots.keys()].filter((id) => id <= want).sort((a, b) => a - b);
    this.#scaleTo(want, now, false);
    this.#rollQueue = running.map((slot) => ({ slot, reason: "reload" as const }));
    this.#reloading = true;
  }

  #onReady(id: number, now: number): void {
    const w = this.#byId.get(id);
    if (!w || w.phase.name !== "starting") return;
    w.phase = { name: "ready", at: now };
    w.readyAt = now;
    w.transitions.push({ state: "ready", at: now });
    w.everReady = true;
    this.#notify({ kind: "ready", worker: w.ref, afterMs: now - w.spawnedAt });
    const slot = this.#slots.get(w.ref.slot);
    if (slot && (slot.current === w || slot.roll?.next === w)) slot.bootFailures = 0;
    if (slot?.roll && slot.roll.next === w) {
      // The new generation listens: retire the old one (zero downtime).
      const old = slot.current;
      const reason = slot.roll.reason;
      slot.current = w;
      slot.roll = undefined;
      // The old one died meanwhile (crash, timeout): that is what this replaces.
      this.#countRestart(slot, slot.pendingReason ?? reason);
      slot.pendingReason = undefined;
      if (old) this.#retire(old, reason, now);
    }
    const all = [...this.#slots.values()].every((s) => s.current?.phase.name === "ready");
    if (this.#phase.name === "booting" && all) {
      this.#phase = { name: "running" };
      this.#notify({ kind: "booted", workers: this.#slots.size });
      // The workers bind with SO_REUSEPORT: another program on their port
      // would silently split its traffic with them.
      this.#out.push(...this.#services.booted());
    }
    const rolling = this.#rollQueue.some((r) => r.reason === "reload") ||
      [...this.#slots.values()].some((s) => s.roll?.reason === "reload");
    if (this.#reloading && all && !rolling) {
      this.#reloading = false;
      this.#notify({ kind: "reloaded", workers: this.#slots.size });
    }
  }

  #onSeen(id: number, requests: number | undefined): void {
    const w = this.#byId.get(id);
    if (!w || requests === undefined) return;
    w.requests = Math.max(w.requests, requests);
    if (w.requestLimit === 0 || w.requests < w.requestLimit || w.phase.name === "stopping") return;
    if (this.#phase.name === "stopping") return;
    // Already queued or rolling; the old generation keeps serving meanwhile.
    if (this.#rollQueue.some((r) => r.slot === w.ref.slot)) return;
    const slot = this.#slots.get(w.ref.slot);
    if (!slot || slot.current !== w || slot.roll) return;
    this.#notify({ kind: "recycling", worker: w.ref, requests: w.requests, limit: w.requestLimit });
    this.#rollQueue.push({ slot: w.ref.slot, reason: "max_requests" });
  }

  /** A ready worker whose memory stays over `max_memory` is rolled, as one slot of a HUP. */
  #onMemory(id: number, bytes: number, now: number): void {
    const limit = this.#config.maxMemoryBytes ?? 0;
    const w = this.#byId.get(id);
    const slot = w && this.#slots.get(w.ref.slot);
    if (limit <= 0 || this.#config.once || this.#phase.name !== "running") return;
    // Judged once ready, as its slot's current worker, and not while that slot rolls or waits to.
    if (!w || !slot || w.phase.name !== "ready" || slot.current !== w || slot.roll) return;
    if (this.#rollQueue.some((r) => r.slot === slot.id)) return;
    const verdict = judgeMemory(w.memory ??= { over: 0, held: false }, slot, bytes, limit, now);
    const held = { worker: w.ref, bytes, limit };
    if (verdict.action === "hold") {
      return this.#notify({ kind: "overMemoryAtStart", ...held, holdMs: verdict.holdMs });
    }
    if (verdict.action !== "roll") return;
    this.#notify({ kind: "overMemory", ...held });
    this.#rollQueue.push({ slot: slot.id, reason: "memory" });
  }

  #onBye(id: number, now: number): void {
    const w = this.#byId.get(id);
    w?.transitions.push({ state: "bye", at: now });
    // Isolates of one process do not exit one by one (the first would end them
    // all): once each has handed over its last harvest, the process is ended.
    if (w !== undefined && w.isolates > 1) this.#out.push(...endProcess(w.ref, now, "kill"));
  }

  #onDue(timer: Timer): void {
    switch (timer.name) {
      case "services":
        return void this.#out.push(...this.#services.delayOver(this.#phase.name === "stopping"));
      case "portRecheck":
        if (this.#phase.name === "running") this.#emit({ type: "checkPort" });
        return;
      case "kill": // Unless it is gone meanwhile.
        if (!this.#byId.has(timer.worker.id)) return;
        return this.#emit({ type: "signal", worker: timer.worker, signal: "SIGKILL" });
      case "killGroup":
        return this.#emit({ type: "signalGroup", worker: timer.worker, signal: "SIGKILL" });
    }
  }

  #onPortChecked(found: PortShare | undefined, now: number): void {
    if (this.#phase.name !== "running") return;
    const { actions, shared } = this.#services.portChecked(found, now);
    this.#out.push(...actions);
    if (shared === undefined) return;
    this.#notify({ kind: "portShared", share: shared });
    this.#stop("quick", now, EXIT_USAGE);
  }

  #onExit(id: number, now: number, cause: BootFailureCause): void {
    const w = this.#byId.get(id);
    if (!w) return;
    if (w === this.#launching) this.#launching = undefined;
    this.#byId.delete(id);
    const slot = this.#slots.get(w.ref.slot);
    const wasCurrent = slot?.current === w;
    const wasNext = slot?.roll?.next === w;
    const planned = w.phase.name === "stopping" ? w.phase.reason : undefined;
    this.#retiring.delete(w);
    if (wasCurrent) slot!.current = undefined;
    if (wasNext) slot!.roll = undefined;
    // A process that never started replaced nothing: its successor counts instead.
    if (w.countAs && slot && !slot.pendingReason) slot.pendingReason = w.countAs;
    this.#emit({ type: "forget", worker: w.ref });
    // What the app started and left behind in the worker's group goes with it.
    if ("exit" in cause) this.#out.push(...endProcess(w.ref, now, "killGroup"));
    const { code, signal } = exitOf(cause);
    // A process that could not be started did not boot, under --once too.
    if ("spawn" in cause) return this.#onBootFailure(w, slot, wasNext, cause, now);
    if (this.#config.once) {
      this.#onceStatus = exitStatus(code, signal);
      this.#notify({ kind: "programExited", worker: w.ref, code, signal });
      if (this.#phase.name !== "stopping") this.#stop("graceful", now);
      return;
    }
    if (this.#phase.name === "stopping") {
      return this.#notify({ kind: "exited", worker: w.ref, code, signal });
    }
    if (!w.everReady && planned === undefined) {
      return this.#onBootFailure(w, slot, wasNext, cause, now);
    }
    if (!wasCurrent || !slot) return this.#notify({ kind: "exited", worker: w.ref, code, signal });
    if (planned === undefined) {
      const delayMs = backOff(slot, now);
      this.#notify({ kind: "crashed", worker: w.ref, code, signal, delayMs });
      slot.pendingReason = "crash";
      // Its replacement is fresh: a roll queued for what the crashed one used is moot.
      this.#rollQueue = this.#rollQueue.filter((r) => r.slot !== slot.id || r.reason === "reload");
    } else {
      // Not "stop": a stopping master has returned above.
      if (planned !== "stop") slot.pendingReason = planned;
      this.#notify({ kind: "exited", worker: w.ref, code, signal, reason: planned });
    }
  }

  #onBootFailure(
    w: WorkerRecord,
    slot: Slot | undefined,
    wasNext: boolean,
    cause: BootFailureCause,
    now: number,
  ): void {
    const notice = (then: Extract<Notice, { kind: "bootFailed" }>["then"]) =>
      this.#notify({ kind: "bootFailed", worker: w.ref, cause, then });
    if (this.#phase.name === "booting") {
      notice({ action: "stop" });
      return this.#stop("quick", now, EXIT_BOOT_FAILURE);
    }
    if (!slot) return this.#notify({ kind: "exited", worker: w.ref, ...exitOf(cause) });
    const then = afterBootFailure(slot, wasNext, slot.current?.ref.generation, now);
    notice(then);
    if (then.action === "keep") this.#rollQueue = [];
    if (then.action === "giveUp") this.#stop("quick", now, EXIT_BOOT_FAILURE);
  }

  #onTick(now: number): void {
    this.#out.push(...dueSignals(this.#live(), now));
    if (this.#phase.name === "stopping") return;
    for (const w of [...this.#live()]) {
      if (w.phase.name === "starting") {
        const age = now - w.spawnedAt;
        if (w.speech === "silent" && age >= UNMANAGED_READY_MS) this.#onReady(w.ref.id, now);
        else if (w.speech !== "silent" && age >= MANAGED_READY_MS) {
          this.#notify({ kind: "noReadyReport", worker: w.ref, afterMs: MANAGED_READY_MS });
          this.#onReady(w.ref.id, now);
        }
      }
      // Heartbeat: only workers that speak the protocol can be judged silent.
      if (this.#watched(w) && now - w.lastSeen > this.#config.timeoutMs) {
        this.#notify({ kind: "silent", worker: w.ref, silentMs: now - w.lastSeen });
        this.#kill(w, "timeout", now);
      }
    }
  }

  // ---- policy ---------------------------------------------------------------

  #countRestart(slot: Slot, reason: RestartReason): void {
    slot.restarts++;
    this.#restarts[reason]++;
  }

  /**
   * Enters the stopping phase (once; the first reason stays) and brings the
   * SIGKILL forward to `killAt`; true when this call entered it.
   */
  #enterStopping(w: WorkerRecord, reason: StopReason, now: number, killAt: number): boolean {
    if (w.phase.name === "stopping") {
      w.phase.killAt = Math.min(w.phase.killAt, killAt);
      return false;
    }
    w.phase = { name: "stopping", reason, killAt };
    w.transitions.push({ state: "stopping", at: now });
    return true;
  }

  /** Takes a worker out of its slot and lets it drain. */
  #retire(w: WorkerRecord, reason: StopReason, now: number): void {
    this.#retiring.add(w);
    this.#drain(w, reason, now);
  }

  /** Asks a worker to drain and exit; SIGKILL once its graceful time is over. */
  #drain(w: WorkerRecord, reason: StopReason, now: number): void {
    const gracefulMs = this.#config.gracefulMs;
    if (!this.#enterStopping(w, reason, now, now + gracefulMs + RETIRE_GRACE_MS)) return;
    this.#emit(
      w.speech === "speaking"
        ? { type: "shutdown", worker: w.ref, gracefulMs }
        : { type: "signal", worker: w.ref, signal: "SIGTERM" },
    );
  }

  /**
   * Stops a worker that cannot be asked: SIGTERM, then SIGKILL. Not SIGABRT,
   * as gunicorn sends: a blocked event loop runs no handler anyway, and the
   * default action dumps core.
   */
  #kill(w: WorkerRecord, reason: StopReason, now: number): void {
    this.#enterStopping(w, reason, now, now + KILL_GRACE_MS);
    this.#emit({ type: "signal", worker: w.ref, signal: "SIGTERM" });
  }

  #scaleTo(n: number, now: number, count: boolean): void {
    const target = Math.max(1, n);
    this.#config.workers = target;
    for (const id of [...this.#slots.keys()].sort((a, b) => a - b)) {
      if (id <= target) continue;
      const slot = this.#slots.get(id)!;
      this.#slots.delete(id);
      this.#rollQueue = this.#rollQueue.filter((r) => r.slot !== id);
      const live = [slot.current, slot.roll?.next].filter((w) => w !== undefined);
      for (const w of live) this.#retire(w, "scale", now);
      // One slot removed is one count, even when it was mid-roll (two workers).
      if (count && live.length > 0) this.#restarts.scale++;
    }
    for (let id = 1; id <= target; id++) {
      if (this.#slots.has(id)) continue;
      const slot = newSlot(id);
      if (count) slot.pendingReason = "scale";
      this.#slots.set(id, slot);
    }
    this.#notify({ kind: "scaled", workers: target });
  }

  #spawn(slot: Slot, now: number, countAs?: RestartReason): WorkerRecord {
    const ref: WorkerRef = { id: this.#nextId++, slot: slot.id, generation: ++slot.spawns };
    const w = newRecord(ref, now, countAs);
    this.#byId.set(ref.id, w);
    this.#launching = w;
    this.#emit({ type: "spawn", worker: ref, heartbeatMs: this.#config.heartbeatMs });
    return w;
  }

  /** Fills empty slots and advances the rolling replacement; ends a finished stop. */
  #manage(now: number): void {
    if (this.#phase.name === "stopping") {
      if (this.#live().next().done) {
        const code = this.#stopCode ?? this.#onceStatus ?? 0;
        this.#phase = { name: "exited", code };
        this.#emit({ type: "exit", code });
      }
      return;
    }
    if (this.#launching !== undefined) return;
    for (const slot of this.#slots.values()) {
      if (slot.current || slot.roll || now < slot.backoffUntil) continue;
      const reason = slot.pendingReason;
      slot.pendingReason = undefined;
      slot.current = this.#spawn(slot, now, reason);
      return;
    }
    // Rolling: one slot at a time gets a new generation; the old one retires on
    // ready. The old one is not marked as stopping before then: if the new one
    // cannot boot, the old one must stay fully supervised (heartbeat, recycling).
    if ([...this.#slots.values()].some((s) => s.roll !== undefined)) return;
    const at = this.#rollQueue.findIndex((r) =>
      (this.#slots.get(r.slot)?.backoffUntil ?? 0) <= now
    );
    if (at < 0) return;
    const [{ slot: id, reason }] = this.#rollQueue.splice(at, 1);
    const slot = this.#slots.get(id);
    if (slot?.current && slot.current.phase.name !== "stopping") {
      slot.roll = { next: this.#spawn(slot, now), reason };
    }
  }

  #stop(mode: "graceful" | "quick", now: number, code?: number): void {
    if (code !== undefined) this.#stopCode = code;
    const phase = this.#phase;
    if (phase.name === "stopping" && (phase.mode === "quick" || mode === "graceful")) return;
    this.#rollQueue = [];
    const graceMs = this.#config.gracefulMs;
    this.#notify({ kind: "stopping", mode, graceMs });
    if (mode === "graceful") {
      this.#phase = { name: "stopping", mode };
      for (const w of this.#live()) this.#drain(w, "stop", now);
      return;
    }
    this.#phase = { name: "stopping", mode };
    for (const w of this.#live()) {
      // Ask for a final harvest first: a signal would lose what is not yet harvested.
      if (w.speech === "speaking") this.#emit({ type: "flush", worker: w.ref });
      this.#enterStopping(w, "stop", now, now + QUICK_KILL_MS);
      if (w.phase.name === "stopping") w.phase.termAt = now + QUICK_TERM_MS;
    }
  }
}
