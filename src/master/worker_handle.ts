/**
 * One worker process as the master sees it: its ref, what it reported about
 * itself, and its end of the handshake and harvest protocol. It reports what
 * the process says and does as {@linkcode WorkerEvents} and carries out what
 * it is told (send, signal); its lifecycle (starting, ready, stopping) is the
 * supervisor's alone to decide and to keep.
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
import type { WorkerRef } from "./supervisor.ts";

/**
 * The one interface from a worker process to the master: what its handle
 * reports, each named by the worker's ref. The arbiter implements it (it
 * enqueues events for the supervisor, and hands harvests to telemetry); the
 * spawner passes it on to each handle as it is.
 */
export interface WorkerEvents {
  /** It said `hello` (once), and was welcomed. */
  hello(worker: WorkerRef): void;
  /** Its server listens. */
  ready(worker: WorkerRef): void;
  /** Any other valid message; `requests` when it reported its request count. */
  seen(worker: WorkerRef, requests?: number): void;
  /** Each of its isolates said bye (after `seen` for the message). */
  bye(worker: WorkerRef): void;
  /** A validated harvest, and the isolate it came from; the handle acks it after this returns. */
  harvest(worker: WorkerRef, message: HarvestMessage, isolate: number): void;
  /** A message failed validation (counted, never fatal). */
  invalid(worker: WorkerRef, reason: string): void;
  /** The process is gone. */
  exit(worker: WorkerRef, code: number | null, signal: string | null): void;
}

/** The `welcome` a worker that said `hello` gets, built by whoever started it. */
export type WelcomeBody = Omit<WelcomeMessage, "type" | "v">;

/** What a handle needs besides its process and ref. */
export interface WorkerHandleOptions {
  events: WorkerEvents;
  /** Builds the `welcome` for this worker. */
  welcome: (worker: WorkerHandle) => WelcomeBody;
  output: OutputOptions;
  write: { stdout(s: string): void; stderr(s: string): void };
  /** Reporters the process runs: one, or one per isolate (`deno serve --parallel`). */
  isolates?: number;
}

/** How many recent harvest seqs a handle remembers (resends come within a few intervals). */
const MERGED_SEQS = 1024;

/** What a handle knows of one isolate: one reporter in the worker process. */
interface IsolateState {
  hello: boolean;
  ready: boolean;
  bye: boolean;
  /** Requests it reported completing (cumulative). */
  requests: number;
  /** The seqs merged lately, oldest first. */
  merged: Set<number>;
}

/**
 * The master's handle on one worker process.
 *
 * @example Wrap a spawned child
 * ```ts ignore
 * import { WorkerHandle } from "./worker_handle.ts";
 * const w = new WorkerHandle(start, { id: 1, slot: 1, generation: 1 }, options);
 * w.send({ type: "shutdown", v: 1, graceful_ms: 30_000 });
 * ```
 */
export class WorkerHandle {
  readonly ref: WorkerRef;
  readonly pid: number | null;
  readonly spawnedAt: number = performance.now();
  readonly spawnedWall: Date = new Date();
  helloAt?: number;
  lastSeenWall?: Date;
  lastHarvestWall?: Date;
  requests = 0;
  harvests = 0;
  addr?: string;
  runtime?: string;
  exitCode: number | null = null;
  exitSignal: string | null = null;
  #child: WorkerProcess;
  #events: WorkerEvents;
  #welcome: (worker: WorkerHandle) => WelcomeBody;
  #outputs: Array<{ flush(): void }> = [];
  #exited = false;
  /** Whether `ready` was passed on: a worker saying it again is only seen. */
  #saidReady = false;
  /** Reporters the process runs: one, or one per isolate (`deno serve --parallel`). */
  readonly isolates: number;
  #isolates = new Map<number, IsolateState>();

  /**
   * Starts the worker: `start` spawns the process with the events this
   * handle listens to (see `spawnWorkerProcess`), and may throw.
   */
  constructor(
    start: (events: WorkerProcessEvents) => WorkerProcess,
    ref: WorkerRef,
    options: WorkerHandleOptions,
  ) {
    this.ref = ref;
    this.isolates = options.isolates ?? 1;
    this.#events = options.events;
    this.#welcome = options.welcome;
    const { output, write } = options;
    const out = lineWriter(ref.slot, "stdout", write.stdout, output);
    const err = lineWriter(ref.slot, "stderr", write.stderr, output);
    this.#outputs = [out, err];
    this.#child = start({
      output: (stream, chunk) => (stream === "stdout" ? out : err).write(chunk),
      message: (raw, isolate) => this.#onMessage(raw, isolate),
      exit: (code, signal) => this.#onExit(code, signal),
    });
    this.pid = this.#child.pid ?? null;
  }

  /** Its slot. */
  get slot(): number {
    return this.ref.slot;
  }

  /** Its generation in the slot. */
  get generation(): number {
    return this.ref.generation;
  }

  /** Milliseconds from spawn to `hello`. */
  get handshakeMs(): number | undefined {
    return this.helloAt === undefined ? undefined : this.helloAt - this.spawnedAt;
  }

  /** Sends a message to every reporter of the worker; false when the channel is gone. */
  send(message: MasterMessage): boolean {
    return this.#child.send(message);
  }

  #isolate(isolate: number): IsolateState {
    let st = this.#isolates.get(isolate);
    if (st === undefined) {
      st = { hello: false, ready: false, bye: false, requests: 0, merged: new Set() };
      this.#isolates.set(isolate, st);
    }
    return st;
  }

  #all(flag: "ready" | "bye"): boolean {
    let n = 0;
    for (const st of this.#isolates.values()) {
      if (!st.hello) continue;
      if (!st[flag]) return false;
      n++;
    }
    return flag === "bye" ? n > 0 : n >= this.isolates;
  }

  /** Sends a signal to the worker process (by pid, never by name). */
  signal(signal: string): void {
    if (this.#exited || this.pid === null) return;
    this.#child.kill(signal);
  }

  /** Signals what the app left in the worker's process group, once the worker is gone. */
  signalGroup(signal: string): void {
    this.#child.killGroup(signal);
  }

  #onMessage(raw: unknown, isolate = 0): void {
    const ref = this.ref;
    const events = this.#events;
    this.lastSeenWall = new Date();
    const parsed = parseWorkerMessage(raw);
    if (!parsed.ok) {
      events.invalid(ref, parsed.error);
      return;
    }
    const m = parsed.message;
    const st = this.#isolate(isolate);
    switch (m.type) {
      case "hello": {
        if (st.hello) return events.seen(ref);
        st.hello = true;
        this.#child.send(
          { type: "welcome", v: PROTOCOL_VERSION, ...this.#welcome(this) },
          isolate,
        );
        if (this.helloAt !== undefined) return events.seen(ref);
        this.helloAt = performance.now();
        this.runtime = m.runtime;
        return events.hello(ref);
      }
      case "ready":
        st.ready = true;
        this.addr ??= m.addr;
        // A worker of several isolates is ready once each of them listens.
        if (this.#saidReady || !this.#all("ready")) return events.seen(ref);
        this.#saidReady = true;
        return events.ready(ref);
      case "heartbeat":
        return events.seen(ref, this.#count(st, m.requests));
      case "harvest":
        // A worker resends what it saw no ack for, with the same seq: merge each seq once.
        if (!st.merged.has(m.seq)) {
          st.merged.add(m.seq);
          if (st.merged.size > MERGED_SEQS) {
            st.merged.delete(st.merged.values().next().value!);
          }
          this.harvests++;
          this.lastHarvestWall = new Date();
          events.harvest(ref, m, isolate);
        }
        this.#child.send({ type: "ack", v: PROTOCOL_VERSION, seq: m.seq }, isolate);
        return events.seen(ref, this.#count(st, m.requests));
      case "bye":
        // Said again, it changes nothing: one bye is reported.
        if (st.bye) return events.seen(ref);
        st.bye = true;
        if (!this.#all("bye")) return events.seen(ref);
        events.seen(ref);
        return events.bye(ref);
    }
  }

  /** Takes an isolate's cumulative request count; returns the worker's, summed over its isolates. */
  #count(st: IsolateState, requests: number | undefined): number | undefined {
    if (requests === undefined) return undefined;
    st.requests = Math.max(st.requests, requests);
    let total = 0;
    for (const s of this.#isolates.values()) total += s.requests;
    this.requests = total;
    return total;
  }

  #onExit(code: number | null, signal: string | null): void {
    if (this.#exited) return;
    this.#exited = true;
    for (const o of this.#outputs) o.flush();
    this.exitCode = code;
    this.exitSignal = signal;
    this.#events.exit(this.ref, code, signal);
  }
}
