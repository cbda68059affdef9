/**
 * The telemetry port: what the master does with its workers' harvests and its
 * own counters. The real one aggregates, serves `/metrics` and `/status`, and
 * counts harvests and dropped points.
 *
 * @module
 */
import type { Config } from "../config/config.ts";
import process from "node:process";
import { Aggregator } from "../export/aggregator.ts";
import type { MetricsServer } from "../export/http_server.ts";
import type { MetricsCredentials } from "../export/auth.ts";
import {
  masterMetrics,
  prometheusMetricName,
  renderPrometheus,
  renderPrometheusAsync,
  type RenderPrometheusOptions,
} from "../export/prometheus.ts";
import {
  type MasterPhaseName,
  type Readiness,
  readiness,
  type StatusDocument,
  type WorkerFigureFields,
  type WorkerStatus,
} from "../export/status.ts";
import type { Logger } from "@logtape/logtape";
import type { HarvestMessage, MetricDelta } from "../protocol/messages.ts";
import { MasterExport } from "./otlp_setup.ts";
import { VERSION } from "../protocol/version.ts";
import { LogThrottle, shorten } from "../log/throttle.ts";
import { firstLine } from "../config/errors.ts";
import type { WorkerView } from "./supervisor.ts";
import type { WorkerHandle } from "./worker_handle.ts";
import { ProcessSampler } from "./process_sampler.ts";
import { linuxProc } from "./proc.ts";
import { RuntimeFigures, runtimeFigures } from "./runtime_figures.ts";
import { DashboardFeed } from "./dashboard_feed.ts";

/** Every sample name the master's own metrics may use, with or without an OTLP exporter. */
const MASTER_SAMPLE_NAMES: readonly string[] = masterMetrics({
  workers: 0,
  restarts: {},
  harvests: 0,
  dropped: {},
  otlp: { exports: 0, failures: 0, retries: 0, dropped: 0, bytes: 0 },
}).map(prometheusMetricName).concat(
  "process_cpu_time_seconds_total",
  "process_memory_usage_bytes",
);

/** Tries, and the wait between them, to listen on a port the old endpoint just closed. */
const FREED_PORT_ATTEMPTS = 10;
const FREED_PORT_WAIT_MS = 50;

/** At most one declaration-conflict line per worker this often. */
const CONFLICT_LOG_MS = 10_000;
/** The throttle key of the lines that tell a declaration took over (no worker's: none sent it last). */
const PROMOTED_LOG_KEY = -1;

/** A worker process as telemetry keys it: a unique id, and the slot its gauges are labelled with. */
export interface WorkerKey {
  readonly id: number;
  readonly slot: number;
}

/** What the supervision looks like now, for the exposition and `/status`. */
export interface SupervisionSnapshot {
  /** The master's phase, for readiness. */
  phase: MasterPhaseName;
  /** Slots the master keeps (workers it wants). */
  workerCount: number;
  /** Slots whose current worker is ready. */
  readyWorkers: number;
  restarts: Readonly<Record<string, number>>;
  /** Every live worker: the supervisor's view of it, and what its process reported. */
  workers: Array<{ view: WorkerView; handle: WorkerHandle }>;
  /**
   * The wall time of a time on the supervisor's clock (default: `performance.now()`'s),
   * from one offset taken with the snapshot, so equal times convert alike.
   */
  wallTime?: (at: number) => Date;
}

/** Where harvests go and how the master shows itself. */
export interface Telemetry {
  /** Merges a worker's harvest, from one of its isolates (0 when it has one). */
  harvest(worker: WorkerKey, message: HarvestMessage, isolate?: number): void;
  /** Counts a message that failed validation. */
  invalid(worker: WorkerKey): void;
  /** The worker is gone, after `requests`: its gauges go, its counts stay. */
  forget(worker: WorkerKey, requests?: number): void;
  /** Starts the metrics endpoint on `bind`; resolves to its address. Throws on failure. */
  serve(bind: string): Promise<{ host: string; port: number }>;
  /**
   * Rejects, with what to change, when the endpoint could not listen on `bind`
   * now; warns when it would be reachable beyond loopback with no credential.
   */
  checkBind(bind: string): Promise<void>;
  /** Starts pushing to the OTLP collector, if one is set. */
  startExport(): void;
  /** Sends a last OTLP export within `finalWithinMs`, then stops the metrics endpoint. */
  close(finalWithinMs: number): Promise<void>;
  /**
   * Applies reloaded settings: the service name and resource, the memory
   * limit, a new OTLP exporter (after a last export from the old one) and a
   * re-bound metrics endpoint. What cannot be applied is logged, never thrown.
   */
  reconfigure?(config: Config, serviceName: string): Promise<void>;
}

/** Options of {@linkcode MasterTelemetry}. */
export interface MasterTelemetryOptions {
  serviceName: string;
  /** The settings: the OTLP exporter's and the memory limit. */
  config: Config;
  log: Logger;
  snapshot: () => SupervisionSnapshot;
  /** Told about failures while serving. */
  onError: (error: Error) => void;
  /** Told each worker's memory after every sampling pass (its process group's, resident). */
  onMemory?: (workerId: number, bytes: number) => void;
}

/**
 * The real telemetry: the aggregate, the master's own counters, and the
 * metrics endpoint that shows them.
 *
 * @example Render the exposition of a master with no worker yet
 * ```ts
 * import assert from "node:assert/strict";
 * import { MasterTelemetry } from "./telemetry.ts";
 * import { typedConfig } from "../config/config.ts";
 * import { logger } from "../log/logging.ts";
 * const t = new MasterTelemetry({
 *   serviceName: "api",
 *   config: typedConfig({}),
 *   log: logger("doc"),
 *   snapshot: () => ({
 *     phase: "booting",
 *     workerCount: 1,
 *     readyWorkers: 0,
 *     restarts: { crash: 0 },
 *     workers: [],
 *   }),
 *   onError: () => {},
 * });
 * assert.ok(t.metricsText().includes("forklift_workers 0"));
 * assert.ok(!t.readiness().ready);
 * ```
 */
export class MasterTelemetry implements Telemetry {
  #o: MasterTelemetryOptions;
  #aggregator: Aggregator;
  #server?: MetricsServer;
  #harvests = 0;
  // Requests of the workers that have exited, for /status's lifetime total.
  #exitedRequests = 0;
  /** Points the workers dropped themselves. */
  #workerDropped = 0;
  /** Invalid messages, and points the validator refused. */
  #invalid = 0;
  /** Points left out of the exposition (a Prometheus name taken). */
  #unexposed = 0;
  #startedAt = new Date();
  /** The OTLP export, replaced by a reload that changes it. */
  #export: MasterExport;
  /** Where the endpoint listens; null once started without one. */
  #bind?: string | null;
  /** What the metrics endpoint asks for; replaced on reload, read on every request. */
  #credentials: MetricsCredentials;
  /** When each worker's last declaration conflict was logged. */
  #conflictLogged = new LogThrottle(CONFLICT_LOG_MS);
  /** The worker whose harvest is being merged, for the log's slot. */
  #merging?: WorkerKey;
  /** Points left out of the exposition so far, by metric and Prometheus name: each counted once. */
  #skipped = new Map<string, number>();
  /** The scrape being rendered, which scrapes that come meanwhile share. */
  #rendering?: Promise<string>;
  /** The workers' process groups, read from /proc every harvest interval. */
  #sampler = new ProcessSampler(linuxProc());
  #sampling?: ReturnType<typeof setInterval>;
  /** What each worker last said of its heap, loop and requests in flight, by worker id. */
  #figures = new RuntimeFigures();
  /** The dashboard's history, sampled while the endpoint is up. */
  #dashboard: DashboardFeed;

  constructor(options: MasterTelemetryOptions) {
    this.#o = options;
    this.#dashboard = new DashboardFeed({
      collect: (name) => this.#aggregator.collect(name)[0],
      status: () => this.status(),
      supervision: () => this.#o.snapshot(),
      otlp: () => this.#export.stats,
      config: () => this.#o.config,
    });
    this.#credentials = credentialsOf(options.config);
    this.#aggregator = new Aggregator({
      memoryLimit: options.config.metricsMemoryLimit * 1024 * 1024,
      onConflict: (worker, name, held, offered) => {
        // Each line quotes what a worker sent: one per worker every
        // CONFLICT_LOG_MS, cut short, however many it sends.
        const more = this.#conflictLogged.admit(worker, performance.now());
        if (more === undefined) return;
        options.log.warn(
          "Dropped the points of {name} from worker {slot}: declared {offered}, kept {held}{more}",
          {
            name: shorten(name),
            slot: this.#merging?.slot ?? worker,
            offered: shorten(offered),
            held: shorten(held),
            more,
          },
        );
      },
      onDeclaration: (change) => {
        const key = change.worker ?? PROMOTED_LOG_KEY;
        const more = this.#conflictLogged.admit(key, performance.now());
        if (more === undefined) return;
        const fields = {
          name: shorten(change.name),
          slot: this.#merging?.slot ?? key,
          offered: shorten(change.offered),
          held: shorten(change.held),
          more,
        };
        options.log.warn(
          change.outcome === "pending"
            ? "Holding the points of {name} from worker {slot}, declared {offered}, until no worker reports it as {held}{more}"
            : change.outcome === "replaced"
            ? "Metric {name} now declared as {offered} (no live worker reported it as {held}): its series start anew{more}"
            : "Metric {name} now declared as {offered} (the last worker with the old declaration {held} exited){more}",
          fields,
        );
      },
    });
    this.#export = new MasterExport(options.config, {
      serviceName: options.serviceName,
      log: options.log,
      collect: () => this.#state(),
      workerRuntime: () => options.snapshot().workers.find((w) => w.handle.runtime)?.handle.runtime,
      startMs: this.#startedAt.getTime(),
    });
  }

  harvest(worker: WorkerKey, m: HarvestMessage, isolate = 0): void {
    this.#harvests++;
    this.#merging = worker;
    const refused = m.refused ?? 0;
    this.#invalid += refused;
    this.#workerDropped += Math.max(0, (m.dropped ?? 0) - refused);
    this.#aggregator.merge(worker.id, m.metrics, worker.slot, isolate);
    this.#figures.record(worker.id, m.metrics);
  }

  invalid(_worker: WorkerKey): void {
    this.#invalid++;
  }

  forget(worker: WorkerKey, requests = 0): void {
    this.#aggregator.removeWorker(worker.id);
    this.#conflictLogged.forget(worker.id);
    this.#figures.forget(worker.id);
    this.#sampler.forget(worker.id);
    this.#exitedRequests += requests;
  }

  async checkBind(bind: string): Promise<void> {
    const { checkMetricsBind } = await import("../export/http_server.ts");
    await checkMetricsBind(bind);
    const { exposureWarning } = await import("../export/auth.ts");
    const exposed = exposureWarning({ ...this.#o.config, metricsBind: bind });
    if (exposed !== undefined) this.#o.log.warn(exposed);
  }

  async serve(bind: string): Promise<{ host: string; port: number }> {
    this.#server = await this.#listen(bind);
    this.#bind = bind;
    this.#dashboard.start();
    return this.#server.address;
  }

  async #listen(bind: string): Promise<MetricsServer> {
    const { startMetricsServer } = await import("../export/http_server.ts");
    return await startMetricsServer({
      bind,
      metrics: () => this.metricsTextAsync(),
      status: () => this.status(),
      ready: () => this.readiness(),
      onError: (e) => this.#o.onError(e),
      credentials: () => this.#credentials,
      dashboard: (since) => this.#dashboard.document(since),
    });
  }

  /** Listens on a port just closed: the runtime may release it a moment later. */
  async #listenFreed(bind: string): Promise<MetricsServer> {
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#listen(bind);
      } catch (e) {
        if (attempt >= FREED_PORT_ATTEMPTS) throw e;
        await new Promise((resolve) => setTimeout(resolve, FREED_PORT_WAIT_MS));
      }
    }
  }

  startExport(): void {
    this.#bind ??= null;
    this.#export.start();
    this.#sample();
  }

  /** Samples the workers' processes now, and again every harvest interval. */
  #sample(): void {
    if (this.#sampling !== undefined) clearInterval(this.#sampling);
    const pass = () => {
      const workers = this.#o.snapshot().workers.flatMap(({ view, handle }) =>
        handle.pid === null ? [] : [{ id: view.worker.id, slot: handle.slot, pid: handle.pid }]
      );
      if (this.#sampler.sample(workers, performance.now())) {
        for (const { id } of workers) {
          const bytes = this.#sampler.figures(id).memoryBytes;
          if (bytes !== null) this.#o.onMemory?.(id, bytes);
        }
        return;
      }
      clearInterval(this.#sampling);
      this.#o.log.info(
        "No /proc here: the workers' process.cpu.time and process.memory.usage are not measured",
      );
    };
    this.#sampling = setInterval(pass, Math.max(100, this.#o.config.harvestIntervalMs));
    (this.#sampling as { unref?: () => void }).unref?.();
    pass();
  }

  async close(finalWithinMs: number): Promise<void> {
    clearInterval(this.#sampling);
    this.#sampling = undefined;
    this.#dashboard.stop();
    await this.#export.close(finalWithinMs);
    await this.#server?.close();
  }

  async reconfigure(config: Config, serviceName: string): Promise<void> {
    this.#o = { ...this.#o, config, serviceName };
    this.#dashboard.event("reload", "settings read again (HUP); the workers roll");
    const credentials = credentialsOf(config);
    if (
      credentials.token !== this.#credentials.token ||
      credentials.basicAuth !== this.#credentials.basicAuth
    ) this.#credentials = credentials;
    this.#aggregator.memoryLimit = config.metricsMemoryLimit * 1024 * 1024;
    this.#export.reconfigure(config, serviceName);
    if (this.#sampling !== undefined) this.#sample();
    // Before the endpoint first starts, starting it reads the new bind.
    if (this.#bind !== undefined && config.metricsBind !== this.#bind) {
      await this.#rebind(config.metricsBind);
    }
  }

  /**
   * Moves the metrics endpoint: the new address is bound first, and only then
   * is the old one closed; one that cannot be bound leaves the old serving.
   * Only when the old endpoint holds the very port asked for (another host on
   * it) is it closed first, and bound again if the new one still fails.
   */
  async #rebind(bind: string | null): Promise<void> {
    const old = this.#server;
    if (bind === null) {
      this.#server = undefined;
      this.#bind = null;
      await old?.close();
      this.#dashboard.stop();
      this.#o.log.info("Stopped serving metrics (metrics_bind is off)");
      return;
    }
    let server: MetricsServer | undefined;
    let error: unknown;
    try {
      server = await this.#listen(bind);
    } catch (e) {
      error = e;
    }
    const port = Number(/:(\d+)$/.exec(bind)?.[1] ?? 0);
    if (server === undefined && old !== undefined && port !== 0 && port === old.address.port) {
      await old.close();
      this.#server = undefined;
      try {
        server = await this.#listenFreed(bind);
      } catch (e) {
        error = e;
        try {
          this.#server = await this.#listenFreed(this.#bind!);
        } catch {
          this.#bind = null;
        }
      }
    }
    if (server === undefined) {
      this.#o.log.error("Cannot serve metrics at {bind}, {where}: {error}", {
        bind,
        where: this.#server ? `still serving at ${this.#bind}` : "not serving metrics now",
        error: firstLine(error),
      });
      return;
    }
    if (this.#server === old) await old?.close();
    this.#server = server;
    this.#bind = bind;
    this.#dashboard.start();
    const { host, port: bound } = server.address;
    const shown = host.includes(":") ? `[${host}]` : host;
    this.#o.log.info("Serving metrics at http://{addr}/metrics", { addr: `${shown}:${bound}` });
  }

  /** Dropped points by reason, as `forklift_dropped_points_total` shows them. */
  #drops(): Record<string, number> {
    const a = this.#aggregator.drops;
    return {
      worker: this.#workerDropped,
      invalid: this.#invalid + a.invalid,
      conflict: a.conflict,
      instrument_limit: a.instrument_limit,
      memory_limit: a.memory_limit,
      exposition: this.#unexposed,
    };
  }

  /** The master's own metrics, then the aggregate: what both exporters show. */
  #state(): MetricDelta[] {
    return [...this.#masterMetrics(), ...this.#workerMetrics()];
  }

  #masterMetrics(): MetricDelta[] {
    const s = this.#o.snapshot();
    return masterMetrics({
      workers: s.readyWorkers,
      restarts: { ...s.restarts },
      harvests: this.#harvests,
      dropped: this.#drops(),
      otlp: this.#export.stats,
    }).concat(this.#sampler.metrics());
  }

  /**
   * Workers' metrics in the order they were first seen: when two map to one
   * Prometheus name, the first keeps it on every scrape and the later one is
   * left out and counted, so no series ever jumps to the other's value.
   */
  #workerMetrics(): MetricDelta[] {
    const rank = (name: string) => this.#aggregator.rank(name) ?? Infinity;
    return this.#aggregator.collect().sort((a, b) => rank(a.name) - rank(b.name));
  }

  /** The Prometheus exposition of the aggregate and the master's own metrics. */
  metricsText(): string {
    const scrape = this.#scrape();
    return this.#finish(scrape, renderPrometheus(scrape.metrics, scrape.options));
  }

  /**
   * {@linkcode MasterTelemetry.metricsText}, rendered in turns so that a large
   * aggregate never holds up harvests for long. Scrapes that arrive while one
   * renders get its text: one snapshot rendered once.
   */
  metricsTextAsync(): Promise<string> {
    this.#rendering ??= (async () => {
      try {
        const scrape = this.#scrape();
        return this.#finish(scrape, await renderPrometheusAsync(scrape.metrics, scrape.options));
      } finally {
        this.#rendering = undefined;
      }
    })();
    return this.#rendering;
  }

  /**
   * The workers' part of a scrape: their metrics as of now, and options that
   * note what the rendering leaves out, so that it is in this scrape's
   * forklift_dropped_points_total (the master's part comes after it, and its
   * names are kept for it).
   */
  #scrape(): {
    metrics: MetricDelta[];
    options: RenderPrometheusOptions;
    skipped: Map<string, number>;
  } {
    // Only this scrape's omissions are remembered: the map holds what the aggregate holds.
    const skipped = new Map<string, number>();
    return {
      metrics: this.#workerMetrics(),
      skipped,
      options: {
        reserved: MASTER_SAMPLE_NAMES,
        onSkip: (skip) => {
          const key = `${skip.name}\u0000${skip.prometheusName}`;
          const before = this.#skipped.get(key) ?? 0;
          skipped.set(key, Math.max(before, skip.points));
          if (skip.points > before) this.#unexposed += skip.points - before;
        },
      },
    };
  }

  #finish(scrape: { skipped: Map<string, number> }, workers: string): string {
    this.#skipped = scrape.skipped;
    return renderPrometheus(this.#masterMetrics()) + workers;
  }

  /** Whether the master should get traffic now (`GET /ready`). */
  readiness(): Readiness {
    const s = this.#o.snapshot();
    return readiness(s.phase, s.readyWorkers, s.workerCount);
  }

  /** A worker's process and runtime figures, for `/status`. */
  #workerFigures(id: number): WorkerFigureFields {
    const p = this.#sampler.figures(id);
    return {
      cpu: p.cpu === null ? null : Math.round(p.cpu * 1000) / 1000,
      memory_bytes: p.memoryBytes,
      ...runtimeFigures(this.#figures.get(id)),
    };
  }

  /** The `/status` document. */
  status(): StatusDocument {
    const s = this.#o.snapshot();
    const ready = readiness(s.phase, s.readyWorkers, s.workerCount);
    const offset = Date.now() - performance.now();
    const toWall = s.wallTime ?? ((t: number) => new Date(offset + t));
    const wall = (at: number) => toWall(at).toISOString();
    const workers: WorkerStatus[] = s.workers.map(({ view, handle: w }) => ({
      slot: view.worker.slot,
      pid: w.pid,
      generation: view.worker.generation,
      state: view.phase,
      spawned_at: w.spawnedWall.toISOString(),
      ready_at: view.readyAt === undefined ? null : wall(view.readyAt),
      handshake_ms: w.handshakeMs === undefined ? null : Math.round(w.handshakeMs * 10) / 10,
      last_harvest_at: w.lastHarvestWall?.toISOString() ?? null,
      last_seen_at: w.lastSeenWall?.toISOString() ?? null,
      requests: w.requests,
      restarts: view.restarts,
      addr: w.addr ?? null,
      runtime: w.runtime ?? null,
      transitions: view.transitions.map((t) => ({ state: t.state, at: wall(t.at) })),
      ...this.#workerFigures(view.worker.id),
    }));
    const reporter = (globalThis as Record<symbol, { stats?: () => { timersArmed: number } }>)[
      Symbol.for("forklift.reporter")
    ];
    return {
      pid: process.pid,
      ready: ready.ready,
      ready_reason: ready.reason,
      phase: s.phase,
      version: VERSION,
      started_at: this.#startedAt.toISOString(),
      uptime_s: Math.round((Date.now() - this.#startedAt.getTime()) / 100) / 10,
      service_name: this.#o.serviceName,
      master_timers_armed: reporter?.stats?.().timersArmed ?? 0,
      workers,
      restarts_by_reason: { ...s.restarts },
      totals: {
        workers: workers.filter((w) => w.state === "ready").length,
        requests: workers.reduce((n, w) => n + w.requests, this.#exitedRequests),
        restarts: Object.values(s.restarts).reduce((a, b) => a + b, 0),
        harvests: this.#harvests,
        dropped_points: Object.values(this.#drops()).reduce((a, b) => a + b, 0),
      },
    };
  }
}

function credentialsOf(config: Config): MetricsCredentials {
  return { token: config.metricsToken, basicAuth: config.metricsBasicAuth };
}
