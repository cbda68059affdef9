/**
 * The reporter's lifecycle: the post-fork handshake with the master, the one
 * harvest timer, acknowledged deltas, `ready`, graceful shutdown, and the
 * per-process singleton.
 *
 * Fork-safety contract (docs/architecture.md): nothing here arms a timer at
 * import. Under forklift the single (unref'd) timer is armed when `welcome`
 * arrives; standalone it is armed lazily on the first recording.
 *
 * @module
 */

import { cancelTimer, repeatEvery, unrefTimer } from "../runtime/timers.ts";
import {
  type MasterMessage,
  parseMasterMessage,
  PROTOCOL_VERSION,
  type WelcomeMessage,
  type WorkerMessage,
} from "../protocol/messages.ts";
import { MASTER_PID_ENV } from "../protocol/env.ts";
import { runtimeId } from "../runtime/detect.ts";
import { hookServe, type ServedServer } from "../runtime/serve.ts";
import { type WorkerIO, workerIO } from "../runtime/worker_io.ts";
import { beforeExit } from "../runtime/before_exit.ts";
import { standaloneOtlp } from "./otlp_standalone.ts";
import { type FetchHandler, HttpMetrics, type NodeResponse } from "./http.ts";
import {
  Counter,
  Gauge,
  Histogram,
  type HistogramOptions,
  type InstrumentOptions,
  UpDownCounter,
} from "./instruments.ts";
import { type Cut, type HarvestCut, splitMetrics, Storage } from "./storage.ts";

/** The key of the per-process singleton on `globalThis`. */
export const REPORTER_KEY: unique symbol = Symbol.for("forklift.reporter") as never;

/** Interval of the standalone timer when nothing else says (OpenTelemetry's default). */
export const STANDALONE_INTERVAL_MS = 60_000;
/** How long the reporter waits for an ack before it gives up on it. */
export const ACK_TIMEOUT_MS = 1000;
/** How long a worker whose master is gone drains its servers before it exits. */
export const MASTER_GONE_DRAIN_MS = 1000;

/** Where the reporter is in its life. */
export type HandshakeState =
  | "idle" // not started
  | "standalone" // no forklift master: counts, exports through the standalone seam
  | "hello" // hello sent, waiting for welcome
  | "welcomed" // identity bound, timer armed
  | "stopping" // shutdown or disconnect in progress
  | "stopped";

/** Debug counters of the reporter, for tests and `forklift status`-style tools. */
export interface ReporterStats {
  /** Where the reporter is in its life. */
  handshake: HandshakeState;
  /** Worker slot from `welcome`, when welcomed. */
  worker: number | undefined;
  /** Worker generation from `welcome`, when welcomed. */
  generation: number | undefined;
  /** Timers this reporter has armed in this process, ever. */
  timersArmed: number;
  /** Timers armed now (0 or 1). */
  timersActive: number;
  /** Period of the armed timer in ms (0 when none). */
  periodMs: number;
  /** Last harvest sequence number sent. */
  seq: number;
  /** Highest harvest sequence number acknowledged. */
  acked: number;
  /** Requests completed by wrapped servers and instrumented handlers. */
  requests: number;
  /** Master messages that failed validation (ignored). */
  invalidMessages: number;
  /** Servers listening now. */
  servers: number;
  /** Times the `postFork` callbacks were run (0 or 1). */
  postForkRuns: number;
}

/** Handle of a timer, whatever the runtime returns. */
export type TimerHandle = unknown;

/**
 * The process the reporter lives in, as an interface so tests can play both
 * sides without a real channel or real time.
 */
export interface ReporterHost extends Omit<WorkerIO, "send" | "wake"> {
  /** `"deno/2.9.6"`, `"bun/1.4.5"`, … */
  readonly runtime: string;
  /** Sends a message; `done` is called once it left (or failed). */
  send(message: WorkerMessage, done?: (error: unknown) => void): void;
  /** Arms a repeating timer. */
  setInterval(fn: () => void, ms: number): TimerHandle;
  /** Arms a one-shot timer. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Clears a timer of either kind. */
  clearTimer(handle: TimerHandle): void;
  /** Monotonic milliseconds. */
  now(): number;
  /** Installs the server hook: the runtime's own serve function, wrapped. */
  hookServe?(reporter: Reporter): void;
  /** The program runs (a server listens): opens a channel that waited for it. */
  wake?(): void;
  /** Calls `fn` before a normal exit (the event loop ran dry). */
  beforeExit?(fn: () => void): void;
}

export { unrefTimer };

/**
 * The host for the real process: its channel to the master from
 * {@linkcode workerIO}, the harvest timer from {@linkcode repeatEvery}, and
 * the global one-shot timers (not `node:timers`, which costs milliseconds to
 * load in Bun).
 *
 * @example Build the real host
 * ```ts ignore
 * import { processHost, Reporter } from "./reporter.ts";
 * const reporter = new Reporter(processHost());
 * ```
 */
export function processHost(): ReporterHost {
  const io = workerIO();
  return {
    pid: io.pid,
    ppid: io.ppid,
    runtime: runtimeId(),
    env: io.env,
    connected: io.connected,
    send: io.send,
    onMessage: io.onMessage,
    onDisconnect: io.onDisconnect,
    refChannel: io.refChannel,
    setInterval: repeatEvery,
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimer: cancelTimer,
    nextTick: io.nextTick,
    now: () => performance.now(),
    exit: io.exit,
    isolates: io.isolates,
    wake: io.wake,
    hookServe: (reporter) => void hookServe(reporter.serveHooks()),
    beforeExit,
  };
}

/** Standalone seam: receives every cut when no forklift master exists. */
export type StandaloneExporter = (cut: Cut) => void;

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * Period of the one timer that serves both the harvest and the heartbeat
 * schedule: their greatest common divisor when it is not much smaller than
 * the shorter one, else the shorter one.
 *
 * @example Harvest every 5 s, heartbeat every 15 s
 * ```ts
 * import assert from "node:assert/strict";
 * import { timerPeriod } from "./reporter.ts";
 * assert.ok(timerPeriod(5000, 15000) === 5000);
 * ```
 */
export function timerPeriod(harvestMs: number, heartbeatMs: number): number {
  if (!(heartbeatMs > 0)) return harvestMs;
  const shorter = Math.min(harvestMs, heartbeatMs);
  const d = gcd(harvestMs, heartbeatMs);
  return d >= shorter / 4 ? d : shorter;
}

/** A harvest sent and not acked yet; a resend carries the same `seq` and data. */
interface InFlight {
  seq: number;
  /** The storage cut it came from; its last message's ack acknowledges the cut. */
  cut: number;
  metrics: HarvestCut["metrics"];
  dropped: number;
  requests: number;
  sentAt: number;
}

/** Points per harvest message at most: a big cut goes as several, far below any frame limit. */
export const MAX_HARVEST_POINTS = 2_000;
/** An unacked harvest is sent again after this many harvest intervals. */
const RESEND_INTERVALS = 2;

/**
 * One process's reporter. Use {@linkcode getReporter} for the singleton; build
 * one directly only in tests, with a fake {@linkcode ReporterHost}.
 *
 * @example A standalone reporter counts
 * ```ts
 * import { getReporter } from "./reporter.ts";
 * const reporter = getReporter();
 * reporter.counter("app.hits").add(1);
 * ```
 */
export class Reporter {
  /** Version of this object's interface, for copies of the module that share it. */
  readonly version = 1;
  /** Every instrument's series. */
  readonly storage: Storage = new Storage();
  /** HTTP server metrics fed by wrapped servers and `instrument()`. */
  readonly http: HttpMetrics;
  readonly #host: ReporterHost;
  #state: HandshakeState = "idle";
  #welcome: WelcomeMessage | undefined;
  #timer: TimerHandle | undefined;
  #timersArmed = 0;
  #sharePort = false;
  #periodMs = 0;
  #harvestMs = 0;
  #heartbeatMs = 0;
  #nextHarvest = 0;
  #nextHeartbeat = 0;
  #seq = 0;
  #acked = 0;
  /** Unacked harvests, oldest first. */
  #inflight: InFlight[] = [];
  #ackWaiters = new Set<() => void>();
  #invalid = 0;
  #servers = new Set<ServedServer>();
  #readyAddr: string | undefined;
  #readySent = false;
  #postFork: Array<() => void> = [];
  #postForkRuns = 0;
  #exporter: StandaloneExporter | undefined;
  #shutdown: Promise<void> | undefined;

  /** Creates a reporter on `host`; it does nothing until {@linkcode Reporter.start}. */
  constructor(host: ReporterHost) {
    this.#host = host;
    this.http = new HttpMetrics(this.storage);
    this.storage.onWake = () => this.#lazyStart();
  }

  /** Creates (or finds) a counter. */
  counter(name: string, options?: InstrumentOptions): Counter {
    return new Counter(this.storage, name, options);
  }

  /** Creates (or finds) an up-down counter. */
  upDownCounter(name: string, options?: InstrumentOptions): UpDownCounter {
    return new UpDownCounter(this.storage, name, options);
  }

  /** Creates (or finds) a gauge. */
  gauge(name: string, options?: InstrumentOptions): Gauge {
    return new Gauge(this.storage, name, options);
  }

  /** Creates (or finds) a histogram. */
  histogram(name: string, options?: HistogramOptions): Histogram {
    return new Histogram(this.storage, name, options);
  }

  /** Names the route of a request (`http.route`). */
  setRoute(req: Request | object, route: string): void {
    this.http.setRoute(req, route);
  }

  /** Wraps a fetch-style handler so its requests are timed (see `instrument`). */
  instrument<H extends FetchHandler>(handler: H, route?: string): H {
    if (typeof handler !== "function") {
      throw new TypeError(`Cannot instrument handler: expected a function, got ${typeof handler}`);
    }
    return this.http.instrument(handler, route);
  }

  /** The current debug counters. */
  stats(): ReporterStats {
    const w = this.#welcome;
    return {
      handshake: this.#state,
      worker: w?.worker,
      generation: w?.generation,
      timersArmed: this.#timersArmed,
      timersActive: this.#timer === undefined ? 0 : 1,
      periodMs: this.#timer === undefined ? 0 : this.#periodMs,
      seq: this.#seq,
      acked: this.#acked,
      requests: this.http.requests,
      invalidMessages: this.#invalid,
      servers: this.#servers.size,
      postForkRuns: this.#postForkRuns,
    };
  }

  /**
   * Whether this process was started by a master that is gone: it has a
   * channel and the environment names a master, but init (pid 1) adopted it.
   * (An app's own subprocess inherits the environment too, with the app as its parent.)
   */
  #masterGone(): boolean {
    const host = this.#host;
    if (!host.connected() || host.ppid !== 1) return false;
    const master = host.env(MASTER_PID_ENV);
    return master !== undefined && master !== "" && master !== "1";
  }

  /** Whether this process is a forklift worker: env names our parent and a channel exists. */
  #underForklift(): boolean {
    const host = this.#host;
    if (!host.connected()) return false; // no channel: never touch env
    const master = host.env(MASTER_PID_ENV);
    return master !== undefined && master !== "" && Number(master) === host.ppid;
  }

  /**
   * Starts the reporter: under forklift, listens to the channel and sends
   * `hello`; otherwise stays standalone. Arms no timer. Idempotent.
   */
  start(options: { sharePort?: boolean } = {}): void {
    if (this.#state !== "idle") return;
    const host = this.#host;
    // Deno exits the process when reusePort is asked for without --unstable-net,
    // which only the injected preload can vouch for; Bun always supports it.
    this.#sharePort = options.sharePort ?? host.runtime.startsWith("bun/");
    try {
      host.hookServe?.(this);
    } catch { /* an exotic runtime: no server hook */ }
    if (this.#masterGone()) {
      // Started by a master that died before this ran: a worker never goes standalone.
      this.#state = "stopped";
      host.exit(0);
      return;
    }
    if (!this.#underForklift()) {
      this.#state = "standalone";
      if (!this.storage.idle) this.#lazyStart();
      return;
    }
    this.#state = "hello";
    host.onMessage((raw) => this.receive(raw));
    host.onDisconnect(() => void this.#leaveWithMaster());
    this.#send({ type: "hello", v: PROTOCOL_VERSION, pid: host.pid, runtime: host.runtime });
  }

  /** Sets the standalone exporter (the seam for direct OTLP export). */
  setStandaloneExporter(exporter: StandaloneExporter | undefined): void {
    this.#exporter = exporter;
  }

  #lazyStart(): void {
    if (this.#state !== "standalone" || this.#timer !== undefined) return;
    let periodMs = STANDALONE_INTERVAL_MS;
    // Read only now, on the first recording: importing the API costs nothing.
    const otlp = this.#exporter === undefined ? standaloneOtlp(this.#host) : undefined;
    if (otlp !== undefined) {
      this.#exporter = (cut) => otlp.export(cut);
      periodMs = otlp.intervalMs;
      let sent = false;
      this.#host.beforeExit?.(() => {
        if (sent) return;
        sent = true;
        this.tick();
      });
    }
    this.#arm(periodMs);
  }

  #arm(periodMs: number): void {
    if (this.#timer !== undefined) this.#host.clearTimer(this.#timer);
    this.#periodMs = periodMs;
    this.#timer = unrefTimer(this.#host.setInterval(() => this.tick(), periodMs));
    this.#timersArmed++;
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#host.clearTimer(this.#timer);
    this.#timer = undefined;
  }

  /**
   * One turn of the timer: harvest and heartbeat when due. Exposed so tests
   * can drive it with fake time.
   */
  tick(): void {
    try {
      if (this.#state === "standalone") {
        const exporter = this.#exporter;
        if (exporter !== undefined) exporter(this.storage.cut());
        return;
      }
      if (this.#state !== "welcomed") return;
      const now = this.#host.now();
      const slack = this.#periodMs / 2;
      if (now + slack >= this.#nextHarvest) {
        this.#nextHarvest = now + this.#harvestMs;
        if (this.harvest()) this.#nextHeartbeat = now + this.#heartbeatMs;
      }
      if (this.#heartbeatMs > 0 && now + slack >= this.#nextHeartbeat) {
        this.#nextHeartbeat = now + this.#heartbeatMs;
        this.#send({ type: "heartbeat", v: PROTOCOL_VERSION, requests: this.http.requests });
      }
    } catch {
      // A tick must never throw into the event loop.
    }
  }

  /**
   * Cuts the storage and sends a harvest. While the channel is open the master
   * acks every harvest it receives, so one still awaiting its ack is late, not
   * lost: sending its data again would count it twice. A regular harvest
   * therefore waits (returns false); only a forced final harvest, after waiting
   * for that ack in vain, folds the unacked data in.
   */
  harvest(force = false): boolean {
    const now = this.#host.now();
    if (this.#inflight.length > 0) {
      // The master merges each seq once, so a resend can never count twice.
      const due = now - this.#inflight[0].sentAt >= RESEND_INTERVALS * this.#harvestMs;
      if (due || force) {
        for (const h of this.#inflight) this.#sendHarvest(h, now);
      }
      if (!force) return due;
    }
    const cut = this.storage.harvestCut();
    const requests = this.http.requests;
    for (const [i, metrics] of splitMetrics(cut.metrics, MAX_HARVEST_POINTS).entries()) {
      const h: InFlight = {
        seq: ++this.#seq,
        cut: cut.number,
        metrics,
        dropped: i === 0 ? cut.dropped : 0,
        requests,
        sentAt: now,
      };
      this.#inflight.push(h);
      this.#sendHarvest(h, now);
    }
    return true;
  }

  #sendHarvest(h: InFlight, now: number): void {
    h.sentAt = now;
    this.#send({
      type: "harvest",
      v: PROTOCOL_VERSION,
      seq: h.seq,
      metrics: h.metrics,
      dropped: h.dropped,
      requests: h.requests,
    });
  }

  /** Handles one raw message from the master; invalid ones are counted and ignored. */
  receive(raw: unknown): void {
    try {
      const parsed = parseMasterMessage(raw);
      if (!parsed.ok) {
        this.#invalid++;
        return;
      }
      this.#dispatch(parsed.message);
    } catch {
      this.#invalid++;
    }
  }

  #dispatch(message: MasterMessage): void {
    switch (message.type) {
      case "welcome":
        return this.#welcomed(message);
      case "ack": {
        if (message.seq > this.#acked) this.#acked = message.seq;
        const acked = this.#inflight.filter((h) => h.seq <= message.seq);
        this.#inflight = this.#inflight.filter((h) => h.seq > message.seq);
        // Acks are cumulative; a cut is the master's once none of its messages is in flight.
        for (const h of acked) {
          if (!this.#inflight.some((p) => p.cut === h.cut)) this.storage.acknowledge(h.cut);
        }
        for (const wake of this.#ackWaiters) wake();
        return;
      }
      case "flush":
        if (this.#state === "welcomed") void this.#flush();
        return;
      case "shutdown":
        void this.shutdown(message.graceful_ms);
        return;
    }
  }

  #welcomed(message: WelcomeMessage): void {
    if (this.#state !== "hello" && this.#state !== "welcomed") return;
    const first = this.#state === "hello";
    this.#welcome = message;
    this.#state = "welcomed";
    this.#harvestMs = message.harvest_interval_ms;
    this.#heartbeatMs = message.heartbeat_ms;
    const now = this.#host.now();
    this.#nextHarvest = now + this.#harvestMs;
    this.#nextHeartbeat = now + this.#heartbeatMs;
    this.#arm(timerPeriod(this.#harvestMs, this.#heartbeatMs));
    // Only now, not at start: a worker that waits for its welcome stays alive
    // for it. When the channel lets go is the host's to time (Bun's costs the
    // main thread milliseconds, which it keeps away from the first requests).
    if (first) this.#host.refChannel(false);
    this.#sendReady();
    if (first) this.#runPostFork();
  }

  async #flush(): Promise<void> {
    const last = this.#inflight.at(-1);
    if (last !== undefined) await this.#awaitAck(last.seq, ACK_TIMEOUT_MS);
    if (this.#state === "welcomed") this.harvest(true);
  }

  /**
   * Sends what was recorded now rather than at the next tick: a harvest (and
   * waits for its ack) under forklift, a cut to the standalone exporter
   * otherwise. Resolves true when the data was handed over.
   */
  async flush(): Promise<boolean> {
    if (this.#state === "standalone") {
      if (this.#exporter === undefined) return false;
      this.tick();
      return true;
    }
    if (this.#state !== "welcomed") return false;
    await this.#flush();
    return this.#awaitAck(this.#seq, ACK_TIMEOUT_MS);
  }

  #send(message: WorkerMessage, done?: (error: unknown) => void): void {
    const host = this.#host;
    if (!host.connected()) {
      done?.(new Error("IPC channel is closed"));
      return;
    }
    host.send(message, done);
  }

  /** Resolves true once `seq` is acked, false after `ms`. Holds the process open meanwhile. */
  #awaitAck(seq: number, ms: number): Promise<boolean> {
    if (this.#acked >= seq) return Promise.resolve(true);
    const host = this.#host;
    return new Promise((resolve) => {
      const finish = (ok: boolean) => {
        this.#ackWaiters.delete(check);
        host.clearTimer(timer);
        resolve(ok);
      };
      const check = () => {
        if (this.#acked >= seq) finish(true);
      };
      const timer = host.setTimeout(() => finish(false), ms);
      this.#ackWaiters.add(check);
    });
  }

  #sleepBounded(work: Promise<unknown>, ms: number): Promise<boolean> {
    const host = this.#host;
    return new Promise((resolve) => {
      const timer = host.setTimeout(() => resolve(false), ms);
      work.then(
        () => {
          host.clearTimer(timer);
          resolve(true);
        },
        () => {
          host.clearTimer(timer);
          resolve(true);
        },
      );
    });
  }

  #sendReady(): void {
    if (this.#state !== "welcomed" || this.#readySent || this.#readyAddr === undefined) return;
    this.#readySent = true;
    this.#send({ type: "ready", v: PROTOCOL_VERSION, addr: this.#readyAddr });
  }

  /** Registers a callback to run once in this worker after `welcome` (see `postFork`). */
  postFork(fn: () => void): void {
    if (typeof fn !== "function") {
      throw new TypeError(
        `Cannot register postFork callback: expected a function, got ${typeof fn}`,
      );
    }
    if (this.#postForkRuns > 0) {
      this.#host.nextTick(() => this.#call(fn));
      return;
    }
    this.#postFork.push(fn);
    if (this.#state === "idle") this.start();
    if (this.#state === "standalone") this.#host.nextTick(() => this.#runPostFork());
  }

  #runPostFork(): void {
    if (this.#postFork.length === 0 && this.#postForkRuns > 0) return;
    this.#postForkRuns = 1;
    const fns = this.#postFork;
    this.#postFork = [];
    for (const fn of fns) this.#call(fn);
  }

  #call(fn: () => void): void {
    try {
      const r = fn() as unknown;
      if (r instanceof Promise) {
        r.catch((e) => console.error("forklift: postFork callback failed:", e));
      }
    } catch (error) {
      console.error("forklift: postFork callback failed:", error);
    }
  }

  /** Hooks for the runtime's server wrapper ({@linkcode hookServe}). */
  serveHooks(): import("../runtime/serve.ts").ServeHooks {
    return {
      // Under forklift every server shares its port, even with one worker: a
      // rolling reload or a TTIN starts a second listener beside the first.
      reusePort: () =>
        this.#state !== "standalone" && this.#state !== "idle" && this.#sharePort &&
        (this.#welcome?.reuse_port ?? true),
      wrap: (handler, route) => {
        return this.http.wrap(handler, route);
      },
      listening: (server) => this.listening(server),
      request: (req, res) => this.http.nodeRequest(req, res as NodeResponse),
      responded: (res) => this.http.nodeResponded(res as NodeResponse),
      closed: (server) => {
        if (this.#servers.delete(server)) this.http.wrappedServers--;
      },
    };
  }

  /** Records a server that listens; the first one's address goes out as `ready`. */
  listening(server: ServedServer): void {
    if (!this.#servers.has(server)) {
      this.#servers.add(server);
      this.http.wrappedServers++;
    }
    this.#readyAddr ??= server.addr;
    this.#host.wake?.();
    this.#sendReady();
  }

  async #drainServers(ms: number): Promise<void> {
    const servers = [...this.#servers];
    if (servers.length === 0) return;
    const drained = await this.#sleepBounded(Promise.all(servers.map((s) => s.drain())), ms);
    if (!drained) {
      for (const s of servers) {
        try {
          s.abort();
        } catch { /* already closed */ }
      }
    }
  }

  /**
   * Stops gracefully: drains the servers (bounded by `gracefulMs`), sends a
   * final harvest with everything unacked, waits for its ack, says `bye`, and
   * exits the process with code 0.
   */
  shutdown(gracefulMs: number): Promise<void> {
    this.#shutdown ??= this.#stop(gracefulMs, true);
    return this.#shutdown;
  }

  #leaveWithMaster(): Promise<void> {
    this.#shutdown ??= this.#stop(MASTER_GONE_DRAIN_MS, false);
    return this.#shutdown;
  }

  async #stop(gracefulMs: number, farewell: boolean): Promise<void> {
    const host = this.#host;
    // A worker told to stop before its welcome still hands over what it recorded.
    const worker = this.#state === "welcomed" || this.#state === "hello";
    this.#state = "stopping";
    this.#disarm();
    let said = false;
    try {
      if (farewell) host.refChannel(true);
      await this.#drainServers(gracefulMs);
      if (farewell && worker && host.connected()) {
        const last = this.#inflight.at(-1);
        if (last !== undefined) await this.#awaitAck(last.seq, ACK_TIMEOUT_MS);
        this.harvest(true);
        const seq = this.#seq;
        await this.#awaitAck(seq, ACK_TIMEOUT_MS);
        await new Promise<void>((resolve) => {
          const timer = host.setTimeout(resolve, ACK_TIMEOUT_MS);
          this.#send({ type: "bye", v: PROTOCOL_VERSION, seq }, () => {
            host.clearTimer(timer);
            said = true;
            resolve();
          });
        });
      }
    } catch {
      // Exit anyway: a worker told to stop must stop.
    }
    this.#state = "stopped";
    // One isolate of several ending the process would cut the others' last
    // harvests short: the master ends it once every isolate has said bye.
    if (said && (host.isolates ?? 1) > 1) {
      host.refChannel(false);
      return;
    }
    host.exit(0);
  }
}

/**
 * Returns this process's reporter, creating it (not started) on first use.
 * Every copy of this module loaded in the process gets the same object.
 *
 * @example Get the singleton
 * ```ts
 * import assert from "node:assert/strict";
 * import { getReporter } from "./reporter.ts";
 * assert.ok(getReporter() === getReporter());
 * ```
 */
export function getReporter(): Reporter {
  const g = globalThis as unknown as Record<symbol, Reporter | undefined>;
  let reporter = g[REPORTER_KEY];
  if (reporter === undefined) {
    reporter = new Reporter(processHost());
    Object.defineProperty(g, REPORTER_KEY, { value: reporter, configurable: false });
  }
  return reporter;
}
