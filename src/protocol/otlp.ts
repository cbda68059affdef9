/**
 * The OTLP metrics data model forklift exports, and its OTLP/JSON encoding
 * (the OTLP specification's JSON mapping of the protobuf messages:
 * lowerCamelCase keys, enums as integers, 64-bit integers as decimal
 * strings). Imports nothing but types, so a reporter running without a
 * master can export with it too; the protobuf encoding lives with the master.
 *
 * @module
 */
import type { Attributes, AttributeValue } from "./messages.ts";

/** `AggregationTemporality` as OTLP numbers it. */
export const TEMPORALITY = { delta: 1, cumulative: 2 } as const;

/** A counter, up-down counter or gauge point. Times are Unix nanoseconds. */
export interface OtlpNumberPoint {
  attributes: Attributes;
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
  value: number;
}

/** A histogram point: `bucketCounts` is one longer than `explicitBounds`. */
export interface OtlpHistogramPoint {
  attributes: Attributes;
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
  count: number;
  sum: number;
  bucketCounts: number[];
  explicitBounds: number[];
  min?: number;
  max?: number;
}

/** One metric with its points. */
export type OtlpMetric =
  & { name: string; description?: string; unit?: string }
  & (
    | {
      type: "sum";
      temporality: 1 | 2;
      isMonotonic: boolean;
      points: OtlpNumberPoint[];
    }
    | { type: "gauge"; points: OtlpNumberPoint[] }
    | { type: "histogram"; temporality: 1 | 2; points: OtlpHistogramPoint[] }
  );

/** One export: a resource, one instrumentation scope and its metrics. */
export interface OtlpBatch {
  resource: Attributes;
  scope: { name: string; version: string };
  metrics: OtlpMetric[];
}

type JsonValue =
  | { stringValue: string }
  | { boolValue: boolean }
  | { intValue: string }
  | { doubleValue: number };

function jsonValue(v: AttributeValue): JsonValue {
  if (typeof v === "string") return { stringValue: v };
  if (typeof v === "boolean") return { boolValue: v };
  return Number.isSafeInteger(v) ? { intValue: String(v) } : { doubleValue: v };
}

function jsonAttributes(attributes: Attributes): Array<{ key: string; value: JsonValue }> {
  return Object.entries(attributes).map(([key, v]) => ({ key, value: jsonValue(v) }));
}

function jsonNumber(p: OtlpNumberPoint) {
  return {
    attributes: jsonAttributes(p.attributes),
    startTimeUnixNano: String(p.startTimeUnixNano),
    timeUnixNano: String(p.timeUnixNano),
    asDouble: p.value,
  };
}

function jsonHistogram(p: OtlpHistogramPoint) {
  return {
    attributes: jsonAttributes(p.attributes),
    startTimeUnixNano: String(p.startTimeUnixNano),
    timeUnixNano: String(p.timeUnixNano),
    count: String(p.count),
    sum: p.sum,
    bucketCounts: p.bucketCounts.map(String),
    explicitBounds: p.explicitBounds,
    ...(p.min === undefined ? {} : { min: p.min }),
    ...(p.max === undefined ? {} : { max: p.max }),
  };
}

function jsonMetric(m: OtlpMetric) {
  const head = {
    name: m.name,
    ...(m.description ? { description: m.description } : {}),
    ...(m.unit ? { unit: m.unit } : {}),
  };
  switch (m.type) {
    case "sum":
      return {
        ...head,
        sum: {
          dataPoints: m.points.map(jsonNumber),
          aggregationTemporality: m.temporality,
          isMonotonic: m.isMonotonic,
        },
      };
    case "gauge":
      return { ...head, gauge: { dataPoints: m.points.map(jsonNumber) } };
    case "histogram":
      return {
        ...head,
        histogram: {
          dataPoints: m.points.map(jsonHistogram),
          aggregationTemporality: m.temporality,
        },
      };
  }
}

/**
 * The `ExportMetricsServiceRequest` of a batch in OTLP/JSON, ready for
 * `JSON.stringify`.
 *
 * @example A counter of 3
 * ```ts
 * import { otlpJson } from "./otlp.ts";
 * const body = otlpJson({
 *   resource: { "service.name": "api" },
 *   scope: { name: "forklift", version: "0.1.0" },
 *   metrics: [{
 *     name: "app.hits", type: "sum", temporality: 2, isMonotonic: true,
 *     points: [{ attributes: {}, startTimeUnixNano: 1n, timeUnixNano: 2n, value: 3 }],
 *   }],
 * });
 * console.assert(JSON.stringify(body).includes('"timeUnixNano":"2"'));
 * ```
 */
export function otlpJson(batch: OtlpBatch): Record<string, unknown> {
  return {
    resourceMetrics: [{
      resource: { attributes: jsonAttributes(batch.resource) },
      scopeMetrics: [{
        scope: { name: batch.scope.name, version: batch.scope.version },
        metrics: batch.metrics.map(jsonMetric),
      }],
    }],
  };
}

/**
 * Unix nanoseconds of a millisecond time (`Date.now()`), exact to the
 * microsecond.
 *
 * @example
 * ```ts
 * import { unixNano } from "./otlp.ts";
 * console.assert(unixNano(1_700_000_000_000) === 1_700_000_000_000_000_000n);
 * ```
 */
export function unixNano(ms: number): bigint {
  return BigInt(Math.round(ms * 1000)) * 1000n;
}
