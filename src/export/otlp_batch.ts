/**
 * Turns the master's cumulative state into OTLP batches, cumulative or delta
 * as the OTLP exporter specification's temporality preference asks.
 *
 * @module
 */
import { canonicalAttributes } from "../protocol/attributes.ts";
import { aggregationOf, type PointValue } from "../protocol/aggregation.ts";
import type { MetricDelta, PointDelta } from "../protocol/messages.ts";
import {
  type OtlpBatch,
  type OtlpHistogramPoint,
  type OtlpMetric,
  type OtlpNumberPoint,
  TEMPORALITY,
  unixNano,
} from "../protocol/otlp.ts";

/**
 * `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`. With neither
 * observable instruments nor synchronous gauges of their own kind in the
 * harvest, `lowmemory` and `delta` pick the same: counters and histograms
 * delta, up-down counters cumulative.
 */
export type TemporalityPreference = "cumulative" | "delta" | "lowmemory";

/** A batch and what to call once the collector has it (or it was given up). */
export interface PendingBatch {
  batch: OtlpBatch;
  /** Data points in the batch. */
  points: number;
  /** Marks the batch as exported: the next delta starts where it ended. */
  commit(): void;
}

/** What the last committed batch held of one series. */
type Last = PointValue;

/**
 * Builds batches from cumulative state. In delta mode it remembers what the
 * last committed batch held, one entry per series: a batch that is never
 * committed (the collector is down) leaves its data for the next one, so
 * every delta is exported once, whatever the retries. A series whose
 * cumulative state went back since the last export (it started over) sends
 * all it holds: a delta is never negative. So does a metric whose
 * `startMs` is new (its declaration changed): its series start then, in
 * cumulative mode too.
 *
 * @example Two delta exports of a counter that went from 5 to 8
 * ```ts
 * import assert from "node:assert/strict";
 * import { OtlpBatcher } from "./otlp_batch.ts";
 * const b = new OtlpBatcher({ temporality: "delta", startMs: 0, resource: () => ({}), scope: { name: "forklift", version: "0" } });
 * const state = (v: number) => [{ name: "hits", kind: "counter" as const, points: [{ attributes: {}, value: v }] }];
 * b.build(state(5), 1000).commit();
 * const next = b.build(state(8), 2000);
 * const point = next.batch.metrics[0].points[0];
 * assert.equal("value" in point ? point.value : undefined, 3);
 * ```
 */
export class OtlpBatcher {
  #delta: boolean;
  #resource: () => OtlpBatch["resource"];
  #scope: OtlpBatch["scope"];
  #startMs: number;
  #last = new Map<string, Last>();
  #lastMs: number;

  constructor(options: {
    temporality: TemporalityPreference;
    /** When the master started: the start of every cumulative series. */
    startMs: number;
    /** The resource of each batch, read when it is built (the workers' runtime is learned late). */
    resource: () => OtlpBatch["resource"];
    scope: OtlpBatch["scope"];
  }) {
    this.#delta = options.temporality !== "cumulative";
    this.#resource = options.resource;
    this.#scope = options.scope;
    this.#startMs = options.startMs;
    this.#lastMs = options.startMs;
  }

  /** The batch for the state `metrics` at `nowMs` (Unix ms). */
  build(metrics: MetricDelta[], nowMs: number): PendingBatch {
    const time = unixNano(nowMs);
    const cumulativeStart = unixNano(this.#startMs);
    const deltaStart = unixNano(this.#lastMs);
    const seen = new Map<string, Last>();
    const out: OtlpMetric[] = [];
    let points = 0;
    for (const m of metrics) {
      const delta = this.#delta && (m.kind === "counter" || m.kind === "histogram");
      // A series set started anew (a new declaration) starts at its own time,
      // and nothing exported before it is taken off what it holds: its first
      // delta holds all it gathered since, maybe before the last export.
      const restart = m.startMs === undefined ? undefined : unixNano(m.startMs);
      const startOf = (key: string) =>
        delta
          ? (restart !== undefined && !this.#last.has(key) ? restart : deltaStart)
          : restart ?? cumulativeStart;
      const head = { name: m.name, description: m.description, unit: m.unit };
      const keyOf = (p: PointDelta) =>
        `${m.name}\u0000${m.startMs ?? ""}\u0000${canonicalAttributes(p.attributes).key}`;
      const aggregation = aggregationOf(m.kind);
      if (m.kind === "histogram") {
        const ps: OtlpHistogramPoint[] = [];
        for (const p of m.points) {
          const key = keyOf(p);
          const now = { count: p.count ?? 0, sum: p.sum ?? 0, buckets: p.buckets ?? [] };
          if (delta) seen.set(key, now);
          // A series that went back (or changed its buckets) started over
          // after the last export: all it holds is new, never a negative count.
          const d = delta ? aggregation.diff(this.#last.get(key), now) : now;
          if (delta && d.count === 0) continue;
          ps.push({
            attributes: p.attributes,
            startTimeUnixNano: startOf(key),
            timeUnixNano: time,
            count: d.count!,
            sum: d.sum!,
            bucketCounts: delta ? d.buckets! : now.buckets.slice(),
            explicitBounds: m.boundaries ?? [],
            // Extremes are known for the whole life only: a delta point has none.
            ...(delta ? {} : { min: p.min, max: p.max }),
          });
        }
        if (ps.length === 0) continue;
        points += ps.length;
        out.push({ ...head, type: "histogram", temporality: temporality(delta), points: ps });
        continue;
      }
      const ps: OtlpNumberPoint[] = [];
      for (const p of m.points) {
        const key = keyOf(p);
        const now = { value: p.value ?? 0 };
        if (delta) seen.set(key, now);
        const value = delta ? aggregation.diff(this.#last.get(key), now).value! : now.value;
        if (delta && value === 0) continue;
        ps.push({
          attributes: p.attributes,
          startTimeUnixNano: startOf(key),
          timeUnixNano: time,
          value,
        });
      }
      if (ps.length === 0) continue;
      points += ps.length;
      out.push(
        m.kind === "gauge" ? { ...head, type: "gauge", points: ps } : {
          ...head,
          type: "sum",
          temporality: temporality(delta),
          isMonotonic: m.kind === "counter",
          points: ps,
        },
      );
    }
    return {
      batch: { resource: this.#resource(), scope: this.#scope, metrics: out },
      points,
      commit: () => {
        if (!this.#delta) return;
        this.#last = seen;
        this.#lastMs = nowMs;
      },
    };
  }
}

function temporality(delta: boolean): 1 | 2 {
  return delta ? TEMPORALITY.delta : TEMPORALITY.cumulative;
}
