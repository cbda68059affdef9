/**
 * The arithmetic of each point kind, written once: how two intervals' points
 * merge, what a cumulative point holds beyond an earlier one, how an
 * accumulation empties, and which values a point may carry. The reporter's
 * storage, the master's aggregator, the OTLP batcher and the message
 * validator all use these objects, one per instrument kind (the shape of the
 * OpenTelemetry SDK's `Aggregator<T>`).
 *
 * @module
 */
import type { InstrumentKind } from "./messages.ts";

/**
 * The numbers of one point, without its attributes: `value` for counters,
 * up-down counters and gauges; `count`, `sum`, `min`, `max` and `buckets`
 * (one count per bucket, not cumulative) for histograms.
 */
export interface PointValue {
  value?: number;
  count?: number;
  sum?: number;
  min?: number;
  max?: number;
  buckets?: number[];
}

/**
 * The arithmetic of one point kind. Exact: every result is what adding the
 * recorded values one by one would give, nothing is estimated.
 */
export interface Aggregation {
  /** The kind it serves. */
  readonly kind: InstrumentKind;
  /**
   * Adds `point` (the next interval, or a delta) into `into`, in place:
   * counters and up-down counters add, gauges take the later value,
   * histograms add counts, sums and buckets and keep the extremes.
   */
  accumulate(into: PointValue, point: PointValue): void;
  /**
   * Whether {@linkcode Aggregation.accumulate} would keep every sum of `into`
   * a finite number (and every count a safe integer): two valid deltas can
   * still add up past the largest double.
   */
  fits(into: PointValue, point: PointValue): boolean;
  /** `earlier` and `later` as one interval, in a new object; neither changes. */
  merge(earlier: PointValue, later: PointValue): PointValue;
  /**
   * What cumulative `now` holds beyond the `last` one exported: all of `now`
   * when it cannot follow `last` (a count went back: the series started over).
   */
  diff(last: PointValue | undefined, now: PointValue): PointValue;
  /** Empties an accumulation in place for the next interval (a gauge keeps its value). */
  reset(accumulation: PointValue): void;
  /** The numbers of `accumulation`, copied (extremes only when known). */
  copy(accumulation: PointValue): PointValue;
  /**
   * Why `point` is no sound point of this kind (for a histogram with
   * `nBuckets` buckets), or undefined when it is.
   */
  validate(point: object, nBuckets: number): string | undefined;
  /** Why `value` is no sound value of this kind's point, or undefined; histograms refuse all. */
  validateValue(value: unknown): string | undefined;
}

function isFiniteNumber(x: unknown): x is number {
  return typeof x === "number" && Number.isFinite(x);
}

function isCount(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/** Counters, up-down counters and gauges: one number per point. */
function scalar(
  kind: "counter" | "updown" | "gauge",
): Aggregation {
  const monotonic = kind === "counter";
  const last = kind === "gauge";
  const validateValue = (v: unknown): string | undefined => {
    if (!isFiniteNumber(v)) return "value must be a finite number";
    if (monotonic && v < 0) return "counter delta must not be negative";
    return undefined;
  };
  return {
    kind,
    accumulate(into, point) {
      into.value = last ? point.value : (into.value ?? 0) + (point.value ?? 0);
    },
    fits(into, point) {
      return last || isFiniteNumber((into.value ?? 0) + (point.value ?? 0));
    },
    merge(earlier, later) {
      const out = { value: earlier.value };
      this.accumulate(out, later);
      return out;
    },
    diff(lastExported, now) {
      const value = now.value ?? 0;
      const before = lastExported?.value ?? 0;
      // A counter below its last export started over since: all of it is new.
      return { value: monotonic && value < before ? value : value - before };
    },
    reset(accumulation) {
      if (!last) accumulation.value = 0;
    },
    copy(accumulation) {
      return { value: accumulation.value };
    },
    validate(point) {
      return validateValue((point as PointValue).value);
    },
    validateValue,
  };
}

/** Whether histogram state `now` cannot follow `last`: a count or bucket went back, or the buckets changed. */
function histogramReset(last: PointValue, now: PointValue): boolean {
  const a = last.buckets ?? [];
  const b = now.buckets ?? [];
  if ((now.count ?? 0) < (last.count ?? 0) || a.length !== b.length) return true;
  for (let i = 0; i < a.length; i++) if (b[i] < a[i]) return true;
  return false;
}

const HISTOGRAM: Aggregation = {
  kind: "histogram",
  accumulate(into, point) {
    into.count = (into.count ?? 0) + (point.count ?? 0);
    into.sum = (into.sum ?? 0) + (point.sum ?? 0);
    const buckets = point.buckets ?? [];
    const sums = into.buckets ??= [];
    for (let i = 0; i < buckets.length; i++) sums[i] = (sums[i] ?? 0) + buckets[i];
    if (point.min !== undefined && !(into.min! <= point.min)) into.min = point.min;
    if (point.max !== undefined && !(into.max! >= point.max)) into.max = point.max;
  },
  fits(into, point) {
    return isFiniteNumber((into.sum ?? 0) + (point.sum ?? 0)) &&
      Number.isSafeInteger((into.count ?? 0) + (point.count ?? 0));
  },
  merge(earlier, later) {
    const out = HISTOGRAM.copy(earlier);
    HISTOGRAM.accumulate(out, later);
    return out;
  },
  diff(last, now) {
    const before = last !== undefined && !histogramReset(last, now) ? last : undefined;
    const buckets = now.buckets ?? [];
    // Extremes are known for the whole life only: a delta has none.
    return {
      count: (now.count ?? 0) - (before?.count ?? 0),
      sum: (now.sum ?? 0) - (before?.sum ?? 0),
      buckets: buckets.map((c, i) => c - (before?.buckets?.[i] ?? 0)),
    };
  },
  reset(accumulation) {
    accumulation.count = 0;
    accumulation.sum = 0;
    accumulation.min = Infinity;
    accumulation.max = -Infinity;
    accumulation.buckets?.fill(0);
  },
  copy(accumulation) {
    const out: PointValue = {
      count: accumulation.count ?? 0,
      sum: accumulation.sum ?? 0,
      buckets: (accumulation.buckets ?? []).slice(),
    };
    if (isFiniteNumber(accumulation.min)) out.min = accumulation.min;
    if (isFiniteNumber(accumulation.max)) out.max = accumulation.max;
    return out;
  },
  validate(point, nBuckets) {
    const p = point as Record<string, unknown>;
    if (!isCount(p.count)) return "histogram count must be a non-negative integer";
    if (!isFiniteNumber(p.sum)) return "histogram sum must be a finite number";
    if (p.min !== undefined && !isFiniteNumber(p.min)) {
      return "histogram min must be a finite number";
    }
    if (p.max !== undefined && !isFiniteNumber(p.max)) {
      return "histogram max must be a finite number";
    }
    const b = p.buckets;
    if (!Array.isArray(b) || b.length !== nBuckets || !b.every(isCount)) {
      return `histogram buckets must be ${nBuckets} non-negative integers`;
    }
    let total = 0;
    for (const c of b as number[]) total += c;
    if (total !== p.count) return "histogram buckets do not add up to its count";
    return undefined;
  },
  validateValue() {
    return "a histogram point has no single value";
  },
};

const AGGREGATIONS: Readonly<Record<InstrumentKind, Aggregation>> = Object.freeze({
  counter: scalar("counter"),
  updown: scalar("updown"),
  gauge: scalar("gauge"),
  histogram: HISTOGRAM,
});

/**
 * The arithmetic of instrument kind `kind`.
 *
 * @example Merge two counter deltas, then take an export off a running total
 * ```ts
 * import assert from "node:assert/strict";
 * import { aggregationOf } from "./aggregation.ts";
 * const sum = aggregationOf("counter");
 * assert.deepEqual(sum.merge({ value: 2 }, { value: 3 }), { value: 5 });
 * assert.deepEqual(sum.diff({ value: 5 }, { value: 8 }), { value: 3 });
 * // A total below the last export started over: all of it is new.
 * assert.deepEqual(sum.diff({ value: 5 }, { value: 1 }), { value: 1 });
 * ```
 *
 * @example Histograms add buckets and keep the extremes
 * ```ts
 * import assert from "node:assert/strict";
 * import { aggregationOf } from "./aggregation.ts";
 * const h = aggregationOf("histogram");
 * const a = { count: 1, sum: 0.5, min: 0.5, max: 0.5, buckets: [1, 0] };
 * const b = { count: 2, sum: 3, min: 1, max: 2, buckets: [0, 2] };
 * assert.deepEqual(h.merge(a, b), { count: 3, sum: 3.5, min: 0.5, max: 2, buckets: [1, 2] });
 * assert.equal(h.validate({ count: 2, sum: 1, buckets: [1, 0] }, 2), "histogram buckets do not add up to its count");
 * ```
 */
export function aggregationOf(kind: InstrumentKind): Aggregation {
  return AGGREGATIONS[kind];
}
