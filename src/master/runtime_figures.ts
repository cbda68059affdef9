/**
 * The last runtime figures each worker reported (heap, event-loop delay,
 * requests in flight), kept per worker process for `/status`.
 *
 * @module
 */
import type { HarvestMetric } from "../protocol/messages.ts";

/** One worker's last reported figures; a figure is absent until reported. */
export interface ReportedFigures {
  heapUsed?: number;
  heapLimit?: number;
  loopDelayP99?: number;
  loopDelayMax?: number;
  activeRequests?: number;
  /** `http.server.request.duration`, all series together, since the worker started. */
  duration?: DurationCounts;
}

/** A histogram's counts: one per bucket, `boundaries.length + 1` of them. */
export interface DurationCounts {
  boundaries: number[];
  counts: number[];
}

/** The gauges read, by metric name. */
const GAUGES: Record<string, Exclude<keyof ReportedFigures, "duration">> = {
  "v8js.memory.heap.used": "heapUsed",
  "v8js.memory.heap.limit": "heapLimit",
  "nodejs.eventloop.delay.p99": "loopDelayP99",
  "nodejs.eventloop.delay.max": "loopDelayMax",
};
const ACTIVE_REQUESTS = "http.server.active_requests";
const DURATION = "http.server.request.duration";

/** The values of a harvested metric's points, both forms. */
function values(metric: HarvestMetric): number[] {
  const out: number[] = [];
  for (const p of metric.points ?? []) if (typeof p.value === "number") out.push(p.value);
  for (const v of metric.values ?? []) if (typeof v === "number") out.push(v);
  return out.filter(Number.isFinite);
}

/**
 * Keeps, per worker process, what it last reported of its runtime. Bounded:
 * one small record per live worker, gone when the worker is forgotten.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RuntimeFigures } from "./runtime_figures.ts";
 * const f = new RuntimeFigures();
 * f.record(1, [{ name: "http.server.active_requests", kind: "updown", points: [{ value: 3 }] }]);
 * f.record(1, [{ name: "http.server.active_requests", kind: "updown", points: [{ value: -1 }] }]);
 * assert.equal(f.get(1)?.activeRequests, 2);
 * ```
 */
export class RuntimeFigures {
  #byWorker = new Map<number, ReportedFigures>();

  /** Reads the runtime figures out of one harvest of worker `id`. */
  record(id: number, metrics: readonly HarvestMetric[]): void {
    let f = this.#byWorker.get(id);
    for (const m of metrics) {
      if (m.name === DURATION && m.kind === "histogram") {
        if (f === undefined) this.#byWorker.set(id, f = {});
        f.duration = addBuckets(f.duration, m);
        continue;
      }
      const key = m.kind === "gauge" ? GAUGES[m.name] : undefined;
      const isRequests = m.name === ACTIVE_REQUESTS && m.kind === "updown";
      if (key === undefined && !isRequests) continue;
      const v = values(m);
      if (v.length === 0) continue;
      if (f === undefined) this.#byWorker.set(id, f = {});
      if (key !== undefined) f[key] = v[v.length - 1];
      // Deltas: the level is their sum since the worker started.
      else f.activeRequests = Math.max(0, (f.activeRequests ?? 0) + v.reduce((a, b) => a + b, 0));
    }
  }

  /** What worker `id` last reported, if anything. */
  get(id: number): Readonly<ReportedFigures> | undefined {
    return this.#byWorker.get(id);
  }

  /** The worker is gone. */
  forget(id: number): void {
    this.#byWorker.delete(id);
  }
}

/** `held` plus the buckets of `metric`'s points; new boundaries start the counts over. */
function addBuckets(held: DurationCounts | undefined, metric: HarvestMetric): DurationCounts {
  const boundaries = metric.boundaries ?? [];
  const same = held !== undefined && held.boundaries.length === boundaries.length &&
    held.boundaries.every((b, i) => b === boundaries[i]);
  const out = same ? held : { boundaries: [...boundaries], counts: boundaries.map(() => 0) };
  if (!same) out.counts.push(0);
  for (const p of metric.points ?? []) {
    if (p.buckets?.length !== out.counts.length) continue;
    p.buckets.forEach((n, i) => {
      if (Number.isFinite(n) && n > 0) out.counts[i] += n;
    });
  }
  return out;
}

/**
 * The `/status` fields of reported figures: null for each one not reported.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runtimeFigures } from "./runtime_figures.ts";
 * assert.equal(runtimeFigures({ heapUsed: 10 }).heap_used_bytes, 10);
 * assert.equal(runtimeFigures(undefined).active_requests, null);
 * ```
 */
export function runtimeFigures(f: Readonly<ReportedFigures> | undefined): {
  heap_used_bytes: number | null;
  heap_limit_bytes: number | null;
  loop_delay_p99_seconds: number | null;
  loop_delay_max_seconds: number | null;
  active_requests: number | null;
  request_duration: { boundaries: number[]; bucket_counts: number[] } | null;
} {
  return {
    heap_used_bytes: f?.heapUsed ?? null,
    heap_limit_bytes: f?.heapLimit ?? null,
    loop_delay_p99_seconds: f?.loopDelayP99 ?? null,
    loop_delay_max_seconds: f?.loopDelayMax ?? null,
    active_requests: f?.activeRequests ?? null,
    request_duration: f?.duration === undefined
      ? null
      : { boundaries: [...f.duration.boundaries], bucket_counts: [...f.duration.counts] },
  };
}
