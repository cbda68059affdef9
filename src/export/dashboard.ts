/**
 * The dashboard's data: a fixed-size history the master samples once a second
 * while its metrics endpoint is up (request rates by status class, latency
 * percentiles, per-slot request rates and memory), a bounded timeline of what
 * the master did, and the `GET /dashboard.json` document built from both.
 * Everything here is pure: the master feeds it what it already holds.
 *
 * @module
 */
import type { MetricDelta } from "../protocol/messages.ts";

/** Seconds of history the ring keeps (one sample a second). */
export const HISTORY_SECONDS = 300;
/** Slots whose request rate and memory the ring keeps; later slots show in the table only. */
export const HISTORY_SLOTS = 64;
/** Events the timeline keeps; older ones go. */
export const TIMELINE_EVENTS = 200;
/** The longest window rates are taken over, in seconds (and samples kept for it). */
export const WINDOW_MAX_SECONDS = 60;
/** Characters of an event's text at most. */
export const EVENT_TEXT_MAX = 160;

/** Columns of one sample: time, 2xx/3xx/4xx/5xx/other per second, p50/p90/p99 in seconds. */
const FIXED = ["t", "r2xx", "r3xx", "r4xx", "r5xx", "rother", "p50", "p90", "p99"] as const;
/** Columns of one slot in one sample: requests a second, memory bytes. */
const PER_SLOT = 2;

/** The name of the request duration histogram the workers report. */
export const HTTP_DURATION = "http.server.request.duration";
const STATUS_CODE = "http.response.status_code";

/**
 * Estimates the `q` quantile from histogram buckets as Prometheus's
 * `histogram_quantile` does: linear interpolation inside the bucket the rank
 * falls in, the first bucket starting at 0 (when its bound is positive), and
 * the highest finite bound when the rank falls in the `+Inf` bucket.
 * `counts` holds one count per bucket (not cumulative), `bounds.length + 1`
 * of them; NaN when there is no observation.
 *
 * @example The median of ten observations spread over (0, 1]
 * ```ts
 * import assert from "node:assert/strict";
 * import { histogramQuantile } from "./dashboard.ts";
 * assert.equal(histogramQuantile(0.5, [1, 2], [10, 0, 0]), 0.5);
 * ```
 */
export function histogramQuantile(q: number, bounds: readonly number[], counts: readonly number[]) {
  if (Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  const cumulative: number[] = [];
  let total = 0;
  for (let i = 0; i <= bounds.length; i++) {
    total += Math.max(0, counts[i] ?? 0);
    cumulative.push(total);
  }
  if (total === 0 || bounds.length === 0) return NaN;
  const rank = q * total;
  let b = cumulative.findIndex((c) => c >= rank);
  if (b < 0) b = bounds.length;
  // The +Inf bucket: the best estimate is the highest finite bound.
  if (b === bounds.length) return bounds[bounds.length - 1];
  // Prometheus takes the first bucket to start at 0, unless its bound is not positive.
  if (b === 0 && bounds[0] <= 0) return bounds[0];
  const start = b === 0 ? 0 : bounds[b - 1];
  const end = bounds[b];
  const before = b === 0 ? 0 : cumulative[b - 1];
  const inBucket = cumulative[b] - before;
  return start + (end - start) * (inBucket === 0 ? 1 : (rank - before) / inBucket);
}

/** Cumulative request counts and duration buckets, summed over every series. */
export interface HttpTotals {
  /** Requests by class: 2xx, 3xx, 4xx, 5xx, anything else. */
  classes: [number, number, number, number, number];
  /** Bucket upper bounds of the duration histogram (empty when none reported yet). */
  bounds: number[];
  /** Observations per bucket, `bounds.length + 1` of them. */
  buckets: number[];
}

/**
 * Sums the request duration histogram's series of an aggregate by status
 * class, and its buckets over every series.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { httpTotals } from "./dashboard.ts";
 * const t = httpTotals([{
 *   name: "http.server.request.duration", kind: "histogram", boundaries: [1],
 *   points: [{ attributes: { "http.response.status_code": 503 }, count: 2, buckets: [2, 0] }],
 * }]);
 * assert.deepEqual(t.classes, [0, 0, 0, 2, 0]);
 * ```
 */
export function httpTotals(metrics: readonly MetricDelta[]): HttpTotals {
  const classes: HttpTotals["classes"] = [0, 0, 0, 0, 0];
  const metric = metrics.find((m) => m.name === HTTP_DURATION && m.kind === "histogram");
  const bounds = metric?.boundaries ?? [];
  const buckets = new Array<number>(bounds.length + 1).fill(0);
  for (const p of metric?.points ?? []) {
    const code = Number(p.attributes[STATUS_CODE]);
    const c = code >= 200 && code < 600 ? Math.floor(code / 100) - 2 : 4;
    const n = p.count ?? 0;
    classes[c >= 0 ? c : 4] += n;
    const b = p.buckets ?? [];
    if (b.length === buckets.length) { for (let i = 0; i < b.length; i++) buckets[i] += b[i]; }
  }
  return { classes, bounds: [...bounds], buckets };
}

/** What the master knows about one live worker at a sample. */
export interface SlotSample {
  slot: number;
  /** Requests this process completed so far. */
  requests: number;
  pid: number | null;
  /** Resident memory when known. */
  memoryBytes?: number | null;
}

/** What the master knows at one sample, for {@linkcode DashboardHistory.sample}. */
export interface MasterSample {
  /** Unix ms. */
  now: number;
  http: HttpTotals;
  workers: readonly SlotSample[];
  /** Slots the master keeps. */
  workerCount: number;
  restarts: Readonly<Record<string, number>>;
  /** The OTLP exporter's counters, when one is set. */
  otlp?: { exports: number; failures: number; retries: number; dropped: number };
}

/** One thing the master did, as the timeline shows it. */
export interface TimelineEvent {
  /** Unix ms. */
  t: number;
  /** `reload`, `restart`, `scale`, `export`, `start`. */
  kind: string;
  text: string;
}

/** Bytes the history ring holds, whatever the number of workers. */
export const HISTORY_BYTES = HISTORY_SECONDS * (FIXED.length + HISTORY_SLOTS * PER_SLOT) * 8;

/**
 * The master's recent past for the dashboard: a ring of
 * {@linkcode HISTORY_SECONDS} samples in one preallocated array
 * ({@linkcode HISTORY_BYTES}), and a timeline of at most
 * {@linkcode TIMELINE_EVENTS} events derived from what changed between samples.
 *
 * @example Two samples a second apart give a rate
 * ```ts
 * import assert from "node:assert/strict";
 * import { DashboardHistory } from "./dashboard.ts";
 * const h = new DashboardHistory();
 * const http = (n: number) => ({ classes: [n, 0, 0, 0, 0] as [number, number, number, number, number], bounds: [], buckets: [0] });
 * const at = (now: number, n: number) => ({ now, http: http(n), workers: [], workerCount: 1, restarts: {} });
 * h.sample(at(1000, 0));
 * h.sample(at(2000, 5));
 * assert.deepEqual(h.series(0).r2xx, [5]);
 * ```
 */
export class DashboardHistory {
  readonly #width = FIXED.length + HISTORY_SLOTS * PER_SLOT;
  readonly #data = new Float64Array(HISTORY_SECONDS * this.#width);
  /** Index of the next sample to write, and how many are held. */
  #head = 0;
  #size = 0;
  #events: TimelineEvent[] = [];
  /** The samples of the last window, oldest first: what rates are taken against. */
  #recent: MasterSample[] = [];
  #lastExportAt: number | null = null;

  /** Samples held now. */
  get size(): number {
    return this.#size;
  }

  /**
   * Seconds the rates and percentiles are taken over, as Prometheus's
   * `rate(x[window])`: workers report every harvest interval, so a window
   * shorter than it would show spikes and zeros.
   */
  windowSeconds = 1;

  /** Records what the master knows now: a point of history once there is a previous sample. */
  sample(s: MasterSample): void {
    const prev = this.#recent.at(-1);
    this.#recent.push(s);
    // The base is the newest sample at least a window old (or the oldest held).
    const windowMs = Math.min(WINDOW_MAX_SECONDS, Math.max(1, this.windowSeconds)) * 1000;
    while (this.#recent.length > 2 && this.#recent[1].now <= s.now - windowMs) {
      this.#recent.shift();
    }
    if (this.#recent.length > WINDOW_MAX_SECONDS + 2) this.#recent.shift();
    if (prev === undefined) {
      this.event(s.now, "start", `watching ${s.workerCount} worker slot(s)`);
      return;
    }
    this.#diff(prev, s);
    const base = this.#recent[0];
    const seconds = Math.max(0.001, (s.now - base.now) / 1000);
    const row = this.#head * this.#width;
    const d = this.#data;
    d.fill(NaN, row, row + this.#width);
    d[row] = Math.round(s.now);
    for (let c = 0; c < 5; c++) {
      d[row + 1 + c] = Math.max(0, s.http.classes[c] - base.http.classes[c]) / seconds;
    }
    // Before the first request the histogram has no bounds: its counts were all zero.
    const baseBuckets = base.http.bounds.length === 0
      ? []
      : base.http.bounds.length === s.http.bounds.length &&
          base.http.bounds.every((b, i) => b === s.http.bounds[i])
      ? base.http.buckets
      : undefined;
    if (baseBuckets !== undefined) {
      const delta = s.http.buckets.map((n, i) => Math.max(0, n - (baseBuckets[i] ?? 0)));
      d[row + 6] = histogramQuantile(0.5, s.http.bounds, delta);
      d[row + 7] = histogramQuantile(0.9, s.http.bounds, delta);
      d[row + 8] = histogramQuantile(0.99, s.http.bounds, delta);
    }
    const before = new Map<number, number>();
    for (const w of base.workers) if (w.pid !== null) before.set(w.pid, w.requests);
    for (const w of s.workers) {
      if (w.slot < 1 || w.slot > HISTORY_SLOTS || w.pid === null) continue;
      const at = row + FIXED.length + (w.slot - 1) * PER_SLOT;
      // A new process in the slot starts from its own zero.
      d[at] = Math.max(0, w.requests - (before.get(w.pid) ?? 0)) / seconds;
      d[at + 1] = w.memoryBytes ?? NaN;
    }
    this.#head = (this.#head + 1) % HISTORY_SECONDS;
    this.#size = Math.min(HISTORY_SECONDS, this.#size + 1);
  }

  /** Adds an event to the timeline, the oldest going past {@linkcode TIMELINE_EVENTS}. */
  event(t: number, kind: string, text: string): void {
    this.#events.push({ t, kind, text: text.slice(0, EVENT_TEXT_MAX) });
    if (this.#events.length > TIMELINE_EVENTS) this.#events.shift();
  }

  /** Unix ms of the last export the collector accepted, as seen by the samples. */
  get lastExportAt(): number | null {
    return this.#lastExportAt;
  }

  #diff(prev: MasterSample, s: MasterSample): void {
    for (const [reason, n] of Object.entries(s.restarts)) {
      const more = n - (prev.restarts[reason] ?? 0);
      if (more <= 0) continue;
      const kind = reason === "reload" ? "reload" : reason === "scale" ? "scale" : "restart";
      this.event(s.now, kind, `${more} worker(s) replaced: ${reason}`);
    }
    if (s.workerCount !== prev.workerCount) {
      this.event(s.now, "scale", `workers ${prev.workerCount} → ${s.workerCount}`);
    }
    if (s.otlp !== undefined) {
      const p = prev.otlp ?? { exports: 0, failures: 0, retries: 0, dropped: 0 };
      if (s.otlp.exports > p.exports) this.#lastExportAt = s.now;
      const failed = s.otlp.failures - p.failures;
      const dropped = s.otlp.dropped - p.dropped;
      if (failed > 0 || dropped > 0) {
        this.event(s.now, "export", `OTLP export: ${failed} failed, ${dropped} batch(es) dropped`);
      }
    }
  }

  /**
   * The samples taken after `since` (Unix ms; all of them when 0), oldest
   * first, as columns; slots with no value in the range are left out.
   */
  series(since: number): DashboardSeries {
    const out: DashboardSeries = {
      t: [],
      r2xx: [],
      r3xx: [],
      r4xx: [],
      r5xx: [],
      rother: [],
      p50: [],
      p90: [],
      p99: [],
      slots: {},
    };
    const d = this.#data;
    const start = (this.#head - this.#size + HISTORY_SECONDS) % HISTORY_SECONDS;
    const rows: number[] = [];
    for (let i = 0; i < this.#size; i++) {
      const row = ((start + i) % HISTORY_SECONDS) * this.#width;
      if (d[row] > since) rows.push(row);
    }
    const num = (v: number) => (Number.isFinite(v) ? Math.round(v * 1e6) / 1e6 : null);
    for (const row of rows) {
      FIXED.forEach((name, c) => out[name].push(num(d[row + c]) as number));
    }
    for (let slot = 1; slot <= HISTORY_SLOTS; slot++) {
      const at = FIXED.length + (slot - 1) * PER_SLOT;
      const rps = rows.map((row) => num(d[row + at]));
      if (rps.every((v) => v === null)) continue;
      out.slots[slot] = { rps, memory: rows.map((row) => num(d[row + at + 1])) };
    }
    return out;
  }

  /** Timeline events after `since` (Unix ms), oldest first. */
  events(since: number): TimelineEvent[] {
    return this.#events.filter((e) => e.t > since);
  }
}

/** Columns of the history, as `/dashboard.json` sends them; null where there is no value. */
export interface DashboardSeries {
  t: number[];
  r2xx: Array<number | null>;
  r3xx: Array<number | null>;
  r4xx: Array<number | null>;
  r5xx: Array<number | null>;
  rother: Array<number | null>;
  p50: Array<number | null>;
  p90: Array<number | null>;
  p99: Array<number | null>;
  /** Per slot: requests a second and memory bytes. */
  slots: Record<number, { rps: Array<number | null>; memory: Array<number | null> }>;
}

/**
 * Reads `?since=` of a dashboard data request: Unix ms, 0 (everything) when
 * absent or not a number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sinceParam } from "./dashboard.ts";
 * assert.equal(sinceParam("http://h/dashboard.json?since=12"), 12);
 * assert.equal(sinceParam("http://h/dashboard.json?since=x"), 0);
 * ```
 */
export function sinceParam(url: string): number {
  const raw = new URL(url).searchParams.get("since");
  const n = raw === null ? 0 : Number(raw);
  return Number.isFinite(n) && n > 0 ? n : 0;
}
