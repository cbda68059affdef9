/**
 * Feeds the dashboard: samples what the master already holds once a second
 * while the metrics endpoint is up, into a fixed-size history, and answers
 * `/dashboard.json` from it. Workers are asked nothing.
 *
 * @module
 */
import type { Config } from "../config/config.ts";
import { jsonValue, SETTINGS_BY_NAME } from "../config/settings.ts";
import { DashboardHistory, HTTP_DURATION, httpTotals } from "../export/dashboard.ts";
import type { StatusDocument } from "../export/status.ts";
import type { MetricDelta } from "../protocol/messages.ts";
import { unrefTimer } from "../runtime/timers.ts";

/** Milliseconds between two samples. */
export const SAMPLE_MS = 1000;

/** The settings the page shows, as `forklift config` names them. */
const SHOWN_SETTINGS = [
  "workers",
  "harvest_interval",
  "export_interval",
  "timeout",
  "max_requests",
  "max_memory",
  "metrics_bind",
  "otlp_endpoint",
  "otlp_metrics_endpoint",
  "otlp_protocol",
  "otlp_headers",
  "metrics_token",
  "metrics_basic_auth",
] as const;

/** OTLP exporter counters, as the feed reads them. */
export interface FeedOtlpStats {
  exports: number;
  failures: number;
  retries: number;
  dropped: number;
}

/** What {@linkcode DashboardFeed} reads from the master. */
export interface DashboardFeedSource {
  /** One metric of the aggregate, cumulative; undefined when none of that name is held. */
  collect(name: string): MetricDelta | undefined;
  /** The `/status` document. */
  status(): StatusDocument;
  /** Slots kept and restarts by reason. */
  supervision(): { workerCount: number; restarts: Readonly<Record<string, number>> };
  /** The exporter's counters; undefined when none is set. */
  otlp(): FeedOtlpStats | undefined;
  config(): Config;
  /** Unix ms; `Date.now` when not given. */
  now?: () => number;
}

/**
 * The dashboard's sampler and its data document.
 *
 * @example
 * ```ts ignore
 * const feed = new DashboardFeed(source);
 * feed.start();
 * const doc = feed.document(0);
 * feed.stop();
 * ```
 */
export class DashboardFeed {
  #source: DashboardFeedSource;
  #history = new DashboardHistory();
  #timer?: ReturnType<typeof setInterval>;
  #now: () => number;

  constructor(source: DashboardFeedSource) {
    this.#source = source;
    this.#now = source.now ?? Date.now;
  }

  /** The history, for tests and the page's data. */
  get history(): DashboardHistory {
    return this.#history;
  }

  /** Samples now and then once a second until {@linkcode stop}; a second call does nothing. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.sample();
    this.#timer = unrefTimer(setInterval(() => this.sample(), SAMPLE_MS));
  }

  /** Stops sampling; the history stays. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Takes one sample. */
  sample(): void {
    const s = this.#source;
    const status = s.status();
    const sup = s.supervision();
    // One harvest interval and a second: every worker has reported once in it.
    this.#history.windowSeconds = s.config().harvestIntervalMs / 1000 + 1;
    this.#history.sample({
      now: this.#now(),
      http: httpTotals([s.collect(HTTP_DURATION)].filter((m) => m !== undefined)),
      workers: status.workers.map((w) => ({
        slot: w.slot,
        pid: w.pid,
        requests: w.requests,
        memoryBytes: (w as { memory_bytes?: number | null }).memory_bytes,
      })),
      workerCount: sup.workerCount,
      // A copy: the supervisor's counters change in place, and the next sample diffs against this one.
      restarts: { ...sup.restarts },
      otlp: s.otlp(),
    });
  }

  /** Adds an event the samples cannot see (a reload of the settings). */
  event(kind: string, text: string): void {
    this.#history.event(this.#now(), kind, text);
  }

  /** The `/dashboard.json` document: history and events after `since` (Unix ms), and now. */
  document(since: number): unknown {
    const s = this.#source;
    const config = s.config() as unknown as Record<string, unknown>;
    const settings: Record<string, unknown> = {};
    for (const name of SHOWN_SETTINGS) {
      const setting = SETTINGS_BY_NAME.get(name);
      const camel = name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
      const seconds = setting?.type === "seconds";
      const key = seconds ? `${camel}Ms` : camel;
      if (setting === undefined || !(key in config)) continue;
      const raw = seconds ? (config[key] as number) / 1000 : config[key];
      const value = jsonValue(setting, raw as never);
      settings[name] = value !== null && typeof value === "object"
        ? Object.keys(value).map((k) => `${k}=****`).join(",")
        : value;
    }
    const otlp = s.otlp();
    return {
      now: this.#now(),
      status: s.status(),
      series: this.#history.series(since),
      events: this.#history.events(since),
      otlp: otlp === undefined ? null : { ...otlp, last_success_at: this.#history.lastExportAt },
      settings,
    };
  }
}
