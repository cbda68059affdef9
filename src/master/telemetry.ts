/**
 * The telemetry port: what the master does with its workers' harvests and its
 * own counters. The real one aggregates, serves `/metrics` and `/status`, and
 * counts harvests and dropped points.
 *
 * @module
 */
import process from "node:process";
import { Aggregator } from "../export/aggregator.ts";
import type { MetricsServer } from "../export/http_server.ts";
import { masterMetrics, renderPrometheus } from "../export/prometheus.ts";
import type { StatusDocument, WorkerStatus } from "../export/status.ts";
import type { Logger } from "@logtape/logtape";
import type { OtlpExporter } from "../export/otlp_exporter.ts";
import type { HarvestMessage, MetricDelta } from "../protocol/messages.ts";
import { otlpExporter } from "./otlp_setup.ts";
import { VERSION } from "../protocol/version.ts";
import type { WorkerView } from "./supervisor.ts";
import type { WorkerHandle } from "./worker_handle.ts";

/** What the supervision looks like now, for the exposition and `/status`. */
export interface SupervisionSnapshot {
  /** Slots whose current worker is ready. */
  readyWorkers: number;
  restarts: Readonly<Record<string, number>>;
  /** Every live worker with its handle. */
  workers: Array<{ view: WorkerView; handle: WorkerHandle }>;
}

/** Where harvests go and how the master shows itself. */
export interface Telemetry {
  /** Merges a worker's harvest. */
  harvest(slot: number, message: HarvestMessage): void;
  /** Counts a message that failed validation. */
  invalid(slot: number): void;
  /** No live worker is left in `slot`: its gauges go. */
  forget(slot: number): void;
  /** Starts the metrics endpoint on `bind`; resolves to its address. Throws on failure. */
  serve(bind: string): Promise<{ host: string; port: number }>;
  /** Starts pushing to the OTLP collector, if one is set. */
  startExport(): void;
  /** Sends a last OTLP export within `finalWithinMs`, then stops the metrics endpoint. */
  close(finalWithinMs: number): Promise<void>;
}

/** Options of {@linkcode MasterTelemetry}. */
export interface MasterTelemetryOptions {
  serviceName: string;
  /** The settings, for the OTLP exporter. */
  settings: Readonly<Record<string, unknown>>;
  log: Logger;
  snapshot: () => SupervisionSnapshot;
  /** Told about failures while serving. */
  onError: (error: Error) => void;
}

/**
 * The real telemetry: the aggregate, the master's own counters, and the
 * metrics endpoint that shows them.
 *
 * @example Render the exposition of a master with no worker yet
 * ```ts
 * import { MasterTelemetry } from "./telemetry.ts";
 * import { logger } from "../log/logging.ts";
 * const t = new MasterTelemetry({
 *   serviceName: "api",
 *   settings: {},
 *   log: logger("doc"),
 *   snapshot: () => ({ readyWorkers: 0, restarts: { crash: 0 }, workers: [] }),
 *   onError: () => {},
 * });
 * console.assert(t.metricsText().includes("forklift_workers 0"));
 * ```
 */
export class MasterTelemetry implements Telemetry {
  #o: MasterTelemetryOptions;
  #aggregator = new Aggregator();
  #server?: MetricsServer;
  #harvests = 0;
  #dropped = 0;
  #invalid = 0;
  #startedAt = new Date();
  #exporter?: OtlpExporter;

  constructor(options: MasterTelemetryOptions) {
    this.#o = options;
    this.#exporter = otlpExporter(options.settings, {
      serviceName: options.serviceName,
      log: options.log,
      collect: () => this.#state(),
      workerRuntime: () => options.snapshot().workers.find((w) => w.handle.runtime)?.handle.runtime,
      startMs: this.#startedAt.getTime(),
    });
  }

  harvest(slot: number, m: HarvestMessage): void {
    this.#harvests++;
    this.#dropped += (m.dropped ?? 0) + this.#aggregator.merge(slot, m.metrics);
  }

  invalid(_slot: number): void {
    this.#invalid++;
  }

  forget(slot: number): void {
    this.#aggregator.removeWorker(slot);
  }

  async serve(bind: string): Promise<{ host: string; port: number }> {
    const { startMetricsServer } = await import("../export/http_server.ts");
    this.#server = await startMetricsServer({
      bind,
      metrics: () => this.metricsText(),
      status: () => this.status(),
      onError: this.#o.onError,
    });
    return this.#server.address;
  }

  startExport(): void {
    this.#exporter?.start();
  }

  async close(finalWithinMs: number): Promise<void> {
    await this.#exporter?.shutdown(finalWithinMs);
    await this.#server?.close();
  }

  /** The master's own metrics, then the aggregate: what both exporters show. */
  #state(): MetricDelta[] {
    const s = this.#o.snapshot();
    const master = masterMetrics({
      workers: s.readyWorkers,
      restarts: { ...s.restarts },
      harvests: this.#harvests,
      dropped: this.#dropped + this.#invalid,
      otlp: this.#exporter?.stats,
    });
    return [...master, ...this.#aggregator.collect()];
  }

  /** The Prometheus exposition of the aggregate and the master's own metrics. */
  metricsText(): string {
    return renderPrometheus(this.#state(), {
      onSkip: (skip) => void (this.#dropped += skip.points),
    });
  }

  /** The `/status` document. */
  status(): StatusDocument {
    const s = this.#o.snapshot();
    const workers: WorkerStatus[] = s.workers.map(({ view, handle: w }) => ({
      slot: w.slot,
      pid: w.pid,
      generation: w.generation,
      state: view.phase,
      spawned_at: w.spawnedWall.toISOString(),
      ready_at: w.readyAt === undefined
        ? null
        : new Date(w.spawnedWall.getTime() + (w.readyAt - w.spawnedAt)).toISOString(),
      handshake_ms: w.handshakeMs === undefined ? null : Math.round(w.handshakeMs * 10) / 10,
      last_harvest_at: w.lastHarvestWall?.toISOString() ?? null,
      last_seen_at: w.lastSeenWall?.toISOString() ?? null,
      requests: w.requests,
      restarts: view.restarts,
      addr: w.addr ?? null,
      runtime: w.runtime ?? null,
      transitions: w.transitions,
    }));
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
      restarts_by_reason: { ...s.restarts },
      totals: {
        workers: workers.filter((w) => w.state === "ready").length,
        requests: workers.reduce((n, w) => n + w.requests, 0),
        restarts: Object.values(s.restarts).reduce((a, b) => a + b, 0),
        harvests: this.#harvests,
        dropped_points: this.#dropped + this.#invalid,
      },
    };
  }
}
