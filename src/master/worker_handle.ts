/**
 * One worker process as the master sees it: its slot and generation, its
 * lifecycle timestamps, and its end of the handshake and harvest protocol.
 *
 * @module
 */
import type { WorkerProcess, WorkerProcessEvents } from "../runtime/spawn.ts";
import {
  type HarvestMessage,
  type MasterMessage,
  parseWorkerMessage,
  PROTOCOL_VERSION,
  type WelcomeMessage,
} from "../protocol/messages.ts";
import { lineWriter, type OutputOptions } from "./output.ts";

/** Where a worker is in its life. */
export type WorkerPhase = "starting" | "ready" | "stopping" | "exited";

/** What the arbiter hears from a worker. */
export interface WorkerEvents {
  /** Builds the `welcome` for a worker that said `hello`. */
  welcome(worker: WorkerHandle): Omit<WelcomeMessage, "type" | "v">;
  /** The worker's server listens, or the worker is taken as ready. */
  ready(worker: WorkerHandle): void;
  /** A validated harvest; the handle acks it after this returns. */
  harvest(worker: WorkerHandle, message: HarvestMessage): void;
  /** The worker reported its request count (harvest or heartbeat). */
  progress(worker: WorkerHandle): void;
  /** A message failed validation (counted, never fatal). */
  invalid(worker: WorkerHandle, reason: string): void;
  /** The process is gone. */
  exit(worker: WorkerHandle): void;
}

/** A state change with its time, for `/status`. */
export interface Transition {
  state: string;
  at: string;
}

/**
 * Describes how a process ended: `code 3`, `signal SIGKILL`.
 *
 * @example
 * ```ts
 * import { describeExit } from "./worker_handle.ts";
 * console.assert(describeExit(null, "SIGKILL") === "signal SIGKILL");
 * ```
 */
export function describeExit(code: number | null, signal: string | null): string {
  return signal ? `signal ${signal}` : `code ${code ?? "unknown"}`;
}

/**
 * The master's handle on one worker process.
 *
 * @example Wrap a spawned child
 * ```ts ignore
 * import { WorkerHandle } from "./worker_handle.ts";
 * const w = new WorkerHandle(child, 1, 1, events, output, (s) => process.stdout.write(s));
 * w.shutdown(30_000);
 * ```
 */
export class WorkerHandle {
  readonly slot: number;
  readonly generation: number;
  readonly pid: number | null;
  readonly spawnedAt: number = performance.now();
  readonly spawnedWall: Date = new Date();
  phase: WorkerPhase = "starting";
  /** Said `hello`: it runs the reporter and speaks the protocol. */
  managed = false;
  /**
   * Will say `hello` once its program runs: a Deno worker on the socket
   * channel connects only when its server listens, so no hello yet does not
   * mean no reporter.
   */
  expectsHello = false;
  helloAt?: number;
  readyAt?: number;
  lastSeen: number = performance.now();
  lastSeenWall?: Date;
  lastHarvestWall?: Date;
  requests = 0;
  harvests = 0;
  addr?: string;
  runtime?: string;
  exitCode: number | null = null;
  exitSignal: string | null = null;
  /** Why the arbiter stopped it, if it did. */
  stopReason?: string;
  /** The per-worker request limit (max_requests + jitter), 0 for none. */
  requestLimit = 0;
  readonly transitions: Transition[] = [];
  #child: WorkerProcess;
  #events: WorkerEvents;
  #killTimer?: ReturnType<typeof setTimeout>;
  #outputs: Array<{ flush(): void }> = [];

  /**
   * Starts the worker: `start` spawns the process with the events this
   * handle listens to (see `spawnWorkerProcess`).
   */
  constructor(
    start: (events: WorkerProcessEvents) => WorkerProcess,
    slot: number,
    generation: number,
    events: WorkerEvents,
    output: OutputOptions,
    write: { stdout(s: string): void; stderr(s: string): void },
  ) {
    this.slot = slot;
    this.generation = generation;
    this.#events = events;
    this.#mark("starting");
    const out = lineWriter(slot, "stdout", write.stdout, output);
    const err = lineWriter(slot, "stderr", write.stderr, output);
    this.#outputs = [out, err];
    this.#child = start({
      output: (stream, chunk) => (stream === "stdout" ? out : err).write(chunk),
      message: (raw) => this.#onMessage(raw),
      exit: (code, signal) => this.#onExit(code, signal),
    });
    this.pid = this.#child.pid ?? null;
  }

  /** Milliseconds from spawn to `hello`. */
  get handshakeMs(): number | undefined {
    return this.helloAt === undefined ? undefined : this.helloAt - this.spawnedAt;
  }

  /** True while the IPC channel is open. */
  get connected(): boolean {
    return this.#child.connected === true;
  }

  #mark(state: string): void {
    this.transitions.push({ state, at: new Date().toISOString() });
  }

  /** Sends a message; false when the channel is gone. */
  send(message: MasterMessage): boolean {
    return this.#child.send(message);
  }

  /** Marks the worker ready (once). */
  markReady(): void {
    if (this.phase !== "starting") return;
    this.phase = "ready";
    this.readyAt = performance.now();
    this.#mark("ready");
    this.#events.ready(this);
  }

  #onMessage(raw: unknown): void {
    this.lastSeen = performance.now();
    this.lastSeenWall = new Date();
    const parsed = parseWorkerMessage(raw);
    if (!parsed.ok) {
      this.#events.invalid(this, parsed.error);
      return;
    }
    const m = parsed.message;
    switch (m.type) {
      case "hello": {
        if (this.managed) return;
        this.managed = true;
        this.helloAt = performance.now();
        this.runtime = m.runtime;
        this.#mark("hello");
        this.send({ type: "welcome", v: PROTOCOL_VERSION, ...this.#events.welcome(this) });
        return;
      }
      case "ready":
        this.addr = m.addr;
        this.markReady();
        return;
      case "heartbeat":
        if (m.requests !== undefined) {
          this.requests = Math.max(this.requests, m.requests);
          this.#events.progress(this);
        }
        return;
      case "harvest":
        this.harvests++;
        this.lastHarvestWall = new Date();
        this.#events.harvest(this, m);
        this.send({ type: "ack", v: PROTOCOL_VERSION, seq: m.seq });
        if (m.requests !== undefined) {
          this.requests = Math.max(this.requests, m.requests);
          this.#events.progress(this);
        }
        return;
      case "bye":
        this.#mark("bye");
        return;
    }
  }

  #onExit(code: number | null, signal: string | null): void {
    if (this.phase === "exited") return;
    for (const o of this.#outputs) o.flush();
    clearTimeout(this.#killTimer);
    this.exitCode = code;
    this.exitSignal = signal;
    this.phase = "exited";
    this.#mark("exited");
    this.#events.exit(this);
  }

  /**
   * Asks the worker to stop: a `shutdown` message when it speaks the
   * protocol (drain, final harvest, `bye`), else SIGTERM; SIGKILL after
   * `gracefulMs`.
   */
  shutdown(gracefulMs: number, reason: string): void {
    if (this.phase === "exited") return;
    if (this.#stopping(reason)) {
      const asked = this.managed &&
        this.send({ type: "shutdown", v: PROTOCOL_VERSION, graceful_ms: Math.round(gracefulMs) });
      if (!asked) this.signal("SIGTERM");
    }
    this.killAfter(gracefulMs + 1000);
  }

  /**
   * Stops a worker that cannot be asked: SIGTERM, then SIGKILL after
   * `graceMs`. Not SIGABRT, as gunicorn sends: a blocked event loop runs no
   * handler anyway, and the default action dumps core (Bun also prints a
   * crash report blaming itself).
   */
  kill(reason: string, graceMs: number): void {
    if (this.phase === "exited") return;
    this.#stopping(reason);
    this.signal("SIGTERM");
    this.killAfter(graceMs);
  }

  /** Enters the stopping phase (once); true when this call entered it. */
  #stopping(reason: string): boolean {
    this.stopReason ??= reason;
    if (this.phase === "stopping") return false;
    this.phase = "stopping";
    this.#mark("stopping");
    return true;
  }

  /** Sends SIGKILL after `ms` unless the worker has exited by then. */
  killAfter(ms: number): void {
    clearTimeout(this.#killTimer);
    this.#killTimer = setTimeout(() => this.signal("SIGKILL"), ms);
  }

  /** Sends a signal to the worker process (by pid, never by name). */
  signal(signal: string): void {
    if (this.phase === "exited" || this.pid === null) return;
    this.#child.kill(signal);
  }
}
