/**
 * One worker process as the master sees it: its slot and generation, what it
 * reported about itself, and its end of the handshake and harvest protocol.
 * Its lifecycle (starting, ready, stopping) is the supervisor's to decide;
 * this handle only records it for `/status`.
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
import { History } from "./history.ts";
import { lineWriter, type OutputOptions } from "./output.ts";

/** What a handle hears from its worker. */
export interface WorkerEvents {
  /** Builds the `welcome` for a worker that said `hello`. */
  welcome(worker: WorkerHandle): Omit<WelcomeMessage, "type" | "v">;
  /** It said `hello` (once), and was welcomed. */
  hello(worker: WorkerHandle): void;
  /** Its server listens. */
  ready(worker: WorkerHandle): void;
  /** Any other valid message; `requests` when it reported its request count. */
  seen(worker: WorkerHandle, requests?: number): void;
  /** Each of its isolates said bye (after `seen` for the message). */
  bye(worker: WorkerHandle): void;
  /** A validated harvest, and the stream (isolate) it came on; the handle acks it after this returns. */
  harvest(worker: WorkerHandle, message: HarvestMessage, stream: number): void;
  /** A message failed validation (counted, never fatal). */
  invalid(worker: WorkerHandle, reason: string): void;
  /** The process is gone. */
  exit(worker: WorkerHandle): void;
}

/** How many recent harvest seqs a handle remembers (resends come within a few intervals). */
const MERGED_SEQS = 1024;

/**
 * How many state changes a handle keeps for `/status`: a life has about five,
 * and a worker that repeats a message must not make the list grow.
 */
const TRANSITIONS = 32;

/** What a handle knows of one stream: one reporter (isolate) in the worker process. */
interface StreamState {
  hello: boolean;
  ready: boolean;
  bye: boolean;
  /** Requests it reported completing (cumulative). */
  requests: number;
  /** The seqs merged lately, oldest first. */
  merged: Set<number>;
}

/** A state change with its time, for `/status`. */
export interface Transition {
  state: string;
  at: string;
}

/**
 * The master's handle on one worker process.
 *
 * @example Wrap a spawned child
 * ```ts ignore
 * import { WorkerHandle } from "./worker_handle.ts";
 * const w = new WorkerHandle(start, 1, 1, events, output, write);
 * w.send({ type: "shutdown", v: 1, graceful_ms: 30_000 });
 * ```
 */
export class WorkerHandle {
  readonly slot: number;
  readonly generation: number;
  readonly pid: number | null;
  readonly spawnedAt: number = performance.now();
  readonly spawnedWall: Date = new Date();
  /** The supervisor's phase for it, as last recorded. */
  phase = "starting";
  helloAt?: number;
  readyAt?: number;
  lastSeenWall?: Date;
  lastHarvestWall?: Date;
  requests = 0;
  harvests = 0;
  addr?: string;
  runtime?: string;
  exitCode: number | null = null;
  exitSignal: string | null = null;
  #transitions = new History<Transition>(TRANSITIONS);
  #child: WorkerProcess;
  #events: WorkerEvents;
  #outputs: Array<{ flush(): void }> = [];
  #exited = false;
  /** Whether `ready` was passed on: a worker saying it again is only seen. */
  #saidReady = false;
  /** Reporters the process runs: one, or one per isolate (`deno serve --parallel`). */
  readonly streams: number;
  #streams = new Map<number, StreamState>();

  /**
   * Starts the worker: `start` spawns the process with the events this
   * handle listens to (see `spawnWorkerProcess`), and may throw.
   */
  constructor(
    start: (events: WorkerProcessEvents) => WorkerProcess,
    slot: number,
    generation: number,
    events: WorkerEvents,
    output: OutputOptions,
    write: { stdout(s: string): void; stderr(s: string): void },
    streams = 1,
  ) {
    this.streams = streams;
    this.slot = slot;
    this.generation = generation;
    this.#events = events;
    this.mark("starting");
    const out = lineWriter(slot, "stdout", write.stdout, output);
    const err = lineWriter(slot, "stderr", write.stderr, output);
    this.#outputs = [out, err];
    this.#child = start({
      output: (stream, chunk) => (stream === "stdout" ? out : err).write(chunk),
      message: (raw, stream) => this.#onMessage(raw, stream),
      exit: (code, signal) => this.#onExit(code, signal),
    });
    this.pid = this.#child.pid ?? null;
  }

  /** Milliseconds from spawn to `hello`. */
  get handshakeMs(): number | undefined {
    return this.helloAt === undefined ? undefined : this.helloAt - this.spawnedAt;
  }

  /** The latest state changes, oldest first. */
  get transitions(): Transition[] {
    return this.#transitions.toArray();
  }

  /** Records a state change with its time. */
  mark(state: string): void {
    if (state === "ready" && this.readyAt === undefined) this.readyAt = performance.now();
    this.#transitions.push({ state, at: new Date().toISOString() });
  }

  /** Sends a message to every reporter of the worker; false when the channel is gone. */
  send(message: MasterMessage): boolean {
    return this.#child.send(message);
  }

  #stream(stream: number): StreamState {
    let st = this.#streams.get(stream);
    if (st === undefined) {
      st = { hello: false, ready: false, bye: false, requests: 0, merged: new Set() };
      this.#streams.set(stream, st);
    }
    return st;
  }

  #all(flag: "ready" | "bye"): boolean {
    let n = 0;
    for (const st of this.#streams.values()) {
      if (!st.hello) continue;
      if (!st[flag]) return false;
      n++;
    }
    return flag === "bye" ? n > 0 : n >= this.streams;
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

  #onMessage(raw: unknown, stream = 0): void {
    this.lastSeenWall = new Date();
    const parsed = parseWorkerMessage(raw);
    if (!parsed.ok) {
      this.#events.invalid(this, parsed.error);
      return;
    }
    const m = parsed.message;
    const st = this.#stream(stream);
    switch (m.type) {
      case "hello": {
        if (st.hello) return this.#events.seen(this);
        st.hello = true;
        this.#child.send(
          { type: "welcome", v: PROTOCOL_VERSION, ...this.#events.welcome(this) },
          stream,
        );
        if (this.helloAt !== undefined) return this.#events.seen(this);
        this.helloAt = performance.now();
        this.runtime = m.runtime;
        this.mark("hello");
        return this.#events.hello(this);
      }
      case "ready":
        st.ready = true;
        this.addr ??= m.addr;
        // A worker of several isolates is ready once each of them listens.
        if (this.#saidReady || !this.#all("ready")) return this.#events.seen(this);
        this.#saidReady = true;
        this.readyAt ??= performance.now();
        return this.#events.ready(this);
      case "heartbeat":
        return this.#events.seen(this, this.#count(st, m.requests));
      case "harvest":
        // A worker resends what it saw no ack for, with the same seq: merge each seq once.
        if (!st.merged.has(m.seq)) {
          st.merged.add(m.seq);
          if (st.merged.size > MERGED_SEQS) {
            st.merged.delete(st.merged.values().next().value!);
          }
          this.harvests++;
          this.lastHarvestWall = new Date();
          this.#events.harvest(this, m, stream);
        }
        this.#child.send({ type: "ack", v: PROTOCOL_VERSION, seq: m.seq }, stream);
        return this.#events.seen(this, this.#count(st, m.requests));
      case "bye":
        // Said again, it changes nothing: one mark, one end.
        if (st.bye) return this.#events.seen(this);
        st.bye = true;
        if (!this.#all("bye")) return this.#events.seen(this);
        this.mark("bye");
        this.#events.seen(this);
        return this.#events.bye(this);
    }
  }

  /** Takes a stream's cumulative request count; returns the worker's, summed over its streams. */
  #count(st: StreamState, requests: number | undefined): number | undefined {
    if (requests === undefined) return undefined;
    st.requests = Math.max(st.requests, requests);
    let total = 0;
    for (const s of this.#streams.values()) total += s.requests;
    this.requests = total;
    return total;
  }

  #onExit(code: number | null, signal: string | null): void {
    if (this.#exited) return;
    this.#exited = true;
    for (const o of this.#outputs) o.flush();
    this.exitCode = code;
    this.exitSignal = signal;
    this.mark("exited");
    this.#events.exit(this);
  }
}
