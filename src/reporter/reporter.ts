/**
 * The reporter's lifecycle: the post-fork handshake with the master, `ready`,
 * graceful shutdown, and the per-process singleton. The jobs it drives live
 * beside it, one file each (delivery, timer, host, servers, runtime metrics,
 * storage), as docs/architecture.md maps them.
 *
 * Fork-safety contract (docs/architecture.md): nothing here arms a timer at
 * import. Under forklift the one timer (unref'd), which serves the harvest and
 * the event-loop probe, is armed when `welcome` arrives; standalone it is
 * armed lazily on the first recording, and there is no probe.
 *
 * @module
 */
import {
  type MasterMessage,
  parseMasterMessage,
  PROTOCOL_VERSION,
  type WelcomeMessage,
  type WorkerMessage,
} from "../protocol/messages.ts";
import type { ServedServer } from "../runtime/serve.ts";
import { standaloneExport, type StandaloneExporter } from "./otlp_standalone.ts";
import { type FetchHandler, HttpMetrics, type NodeResponse } from "./http.ts";
import {
  Counter,
  Gauge,
  Histogram,
  type HistogramOptions,
  type InstrumentOptions,
  UpDownCounter,
} from "./instruments.ts";
import { Storage } from "./storage.ts";
import { HarvestDelivery } from "./delivery.ts";
import { masterGone, processHost, type ReporterHost, underForklift } from "./host.ts";
import type { HandshakeState, ReporterStats } from "./reporter_stats.ts";
import { HarvestTimer } from "./harvest_timer.ts";
import { AfterWelcomeCallbacks } from "./after_welcome.ts";
import { ServedServers } from "./served_servers.ts";
import { RuntimeSampler } from "./runtime_metrics.ts";

export type { HandshakeState, ReporterStats } from "./reporter_stats.ts";

/** The key of the per-process singleton on `globalThis`. */
export const REPORTER_KEY: unique symbol = Symbol.for("forklift.reporter") as never;

/** How long a worker whose master is gone drains its servers before it exits. */
export const MASTER_GONE_DRAIN_MS = 1000;

/**
 * One process's reporter. Use {@linkcode getReporter} for the singleton; build
 * one directly only in tests, with a fake {@linkcode ReporterHost}.
 *
 * @example A standalone reporter counts
 * ```ts
 * import assert from "node:assert/strict";
 * import { getReporter } from "./reporter.ts";
 * const reporter = getReporter();
 * reporter.counter("app.hits").add(1);
 * assert.equal(reporter.stats().handshake, "idle");
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
  readonly #timer: HarvestTimer;
  #sharePort = false;
  readonly #delivery: HarvestDelivery;
  #invalid = 0;
  readonly #servers: ServedServers;
  #readySent = false;
  readonly #afterWelcome: AfterWelcomeCallbacks;
  #exporter: StandaloneExporter | undefined;
  #shutdown: Promise<void> | undefined;
  readonly #runtime: RuntimeSampler;
  // Made once: the timer turns up to 20 times a second for the life of the
  // worker, and two closures a turn would be garbage every turn.
  readonly #harvestDue = (): boolean => this.harvest();
  readonly #heartbeatDue = (): void =>
    this.#send({ type: "heartbeat", v: PROTOCOL_VERSION, requests: this.http.requests });

  /** Creates a reporter on `host`; it does nothing until {@linkcode Reporter.start}. */
  constructor(host: ReporterHost) {
    this.#host = host;
    this.http = new HttpMetrics(this.storage);
    this.#delivery = new HarvestDelivery(this.storage, {
      now: () => host.now(),
      setTimeout: (fn, ms) => host.setTimeout(fn, ms),
      clearTimer: (t) => host.clearTimer(t),
      send: (message, done) => this.#send(message, done),
      requests: () => this.http.requests,
      beforeCut: () => this.#runtime.sample(),
    });
    this.#runtime = new RuntimeSampler(this.storage, host, () => this.http.active);
    this.#timer = new HarvestTimer(host, () => this.tick());
    this.#afterWelcome = new AfterWelcomeCallbacks((fn) => host.nextTick(fn));
    this.#servers = new ServedServers(this.http, host);
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
      timersArmed: this.#timer.armed,
      timersActive: this.#timer.active ? 1 : 0,
      periodMs: this.#timer.periodMs,
      seq: this.#delivery.seq,
      acked: this.#delivery.acked,
      requests: this.http.requests,
      invalidMessages: this.#invalid,
      servers: this.#servers.size,
      postForkRuns: this.#afterWelcome.runs,
    };
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
    if (masterGone(host)) {
      // Started by a master that died before this ran: a worker never goes standalone.
      this.#state = "stopped";
      host.exit(0);
      return;
    }
    if (!underForklift(host)) {
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
    if (this.#state !== "standalone" || this.#timer.active) return;
    const setup = standaloneExport(this.#host, this.#exporter, () => this.tick());
    this.#exporter = setup.exporter;
    this.#timer.arm(setup.periodMs);
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
      if (this.#runtime.turn()) this.#timer.pace(this.#runtime.paceMs);
      this.#timer.turn(this.#harvestDue, this.#heartbeatDue);
    } catch {
      // A tick must never throw into the event loop.
    }
  }

  /** Sends a harvest now (see {@linkcode HarvestDelivery.harvest}); false when one waits for its ack. */
  harvest(force = false): boolean {
    return this.#delivery.harvest(force);
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
      case "ack":
        return this.#delivery.ack(message.seq);
      case "flush":
        if (this.#state === "welcomed") void this.#delivery.flush(() => this.#state === "welcomed");
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
    this.#delivery.harvestMs = message.harvest_interval_ms;
    // The probe rides the one timer: it sets its pace before the timer is armed.
    if (first && this.#host.runtimeMetrics === true) this.#runtime.start(message.worker);
    this.#timer.pace(this.#runtime.paceMs);
    this.#timer.schedule(message.harvest_interval_ms, message.heartbeat_ms);
    // Only now, not at start: a worker that waits for its welcome stays alive
    // for it. When the channel lets go is the host's to time (Bun's costs the
    // main thread milliseconds, which it keeps away from the first requests).
    if (first) this.#host.refChannel(false);
    this.#sendReady();
    if (first) this.#afterWelcome.run();
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
    await this.#delivery.flush(() => this.#state === "welcomed");
    return this.#delivery.awaitAck(this.#delivery.seq);
  }

  #send(message: WorkerMessage, done?: (error: unknown) => void): void {
    const host = this.#host;
    if (!host.connected()) {
      done?.(new Error("IPC channel is closed"));
      return;
    }
    host.send(message, done);
  }

  #sendReady(): void {
    const addr = this.#servers.addr;
    if (this.#state !== "welcomed" || this.#readySent || addr === undefined) return;
    this.#readySent = true;
    this.#send({ type: "ready", v: PROTOCOL_VERSION, addr });
  }

  /** Registers a callback to run once in this worker after `welcome`: what `postFork()` of mod.ts calls. */
  afterWelcome(fn: () => void): void {
    if (typeof fn !== "function") {
      throw new TypeError(
        `Cannot register postFork callback: expected a function, got ${typeof fn}`,
      );
    }
    if (!this.#afterWelcome.add(fn)) return;
    if (this.#state === "idle") this.start();
    if (this.#state === "standalone") this.#host.nextTick(() => this.#afterWelcome.run());
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
      closed: (server) => this.#servers.delete(server),
    };
  }

  /** Records a server that listens; the first one's address goes out as `ready`. */
  listening(server: ServedServer): void {
    this.#servers.add(server);
    this.#host.wake?.();
    this.#sendReady();
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
    this.#timer.disarm();
    this.#runtime.stop();
    let said = false;
    try {
      if (farewell) host.refChannel(true);
      await this.#servers.drain(gracefulMs);
      if (farewell && worker && host.connected()) said = await this.#delivery.farewell();
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
