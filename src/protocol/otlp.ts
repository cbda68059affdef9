/**
 * The OTLP metrics data model forklift exports, and its OTLP/JSON encoding
 * (the OTLP specification's JSON mapping of the protobuf messages:
 * lowerCamelCase keys, enums as integers, 64-bit integers as decimal
 * strings). Imports nothing but types, so a reporter running without a
 * master can export with it too; the protobuf encoding lives with the master.
 *
 * @module
 */
import type { Attributes, AttributeValue, MetricDelta } from "./messages.ts";

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

/** `{ attributes: [...] }`, or nothing for none: the JSON mapping omits empty repeated fields. */
function jsonAttributes(
  attributes: Attributes,
): { attributes?: Array<{ key: string; value: JsonValue }> } {
  const list = Object.entries(attributes).map(([key, v]) => ({ key, value: jsonValue(v) }));
  return list.length === 0 ? {} : { attributes: list };
}

function jsonNumber(p: OtlpNumberPoint) {
  return {
    ...jsonAttributes(p.attributes),
    startTimeUnixNano: String(p.startTimeUnixNano),
    timeUnixNano: String(p.timeUnixNano),
    asDouble: p.value,
  };
}

function jsonHistogram(p: OtlpHistogramPoint) {
  return {
    ...jsonAttributes(p.attributes),
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
 * import assert from "node:assert/strict";
 * import { otlpJson } from "./otlp.ts";
 * const body = otlpJson({
 *   resource: { "service.name": "api" },
 *   scope: { name: "forklift", version: "0.1.0" },
 *   metrics: [{
 *     name: "app.hits", type: "sum", temporality: 2, isMonotonic: true,
 *     points: [{ attributes: {}, startTimeUnixNano: 1n, timeUnixNano: 2n, value: 3 }],
 *   }],
 * });
 * assert.ok(JSON.stringify(body).includes('"timeUnixNano":"2"'));
 * ```
 */
export function otlpJson(batch: OtlpBatch): Record<string, unknown> {
  return {
    resourceMetrics: [{
      resource: jsonAttributes(batch.resource),
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
 * import assert from "node:assert/strict";
 * import { unixNano } from "./otlp.ts";
 * assert.ok(unixNano(1_700_000_000_000) === 1_700_000_000_000_000_000n);
 * ```
 */
export function unixNano(ms: number): bigint {
  return BigInt(Math.round(ms * 1000)) * 1000n;
}

/**
 * A batch of deltas, as a reporter's cut holds them: counters, up-down
 * counters and histograms with delta temporality over `[startMs, nowMs]`
 * (Unix ms), gauges as they are.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { deltaBatch } from "./otlp.ts";
 * const b = deltaBatch([{ name: "hits", kind: "counter", points: [{ attributes: {}, value: 2 }] }], {
 *   startMs: 0, nowMs: 1000, resource: {}, scope: { name: "forklift", version: "0" },
 * });
 * assert.ok(b.metrics[0].type === "sum" && b.metrics[0].temporality === 1);
 * ```
 */
export function deltaBatch(
  metrics: MetricDelta[],
  o: { startMs: number; nowMs: number; resource: Attributes; scope: OtlpBatch["scope"] },
): OtlpBatch {
  const start = unixNano(o.startMs);
  const time = unixNano(o.nowMs);
  const out: OtlpMetric[] = metrics.map((m) => {
    const head = { name: m.name, description: m.description, unit: m.unit };
    if (m.kind === "histogram") {
      return {
        ...head,
        type: "histogram",
        temporality: TEMPORALITY.delta,
        points: m.points.map((p) => ({
          attributes: p.attributes,
          startTimeUnixNano: start,
          timeUnixNano: time,
          count: p.count ?? 0,
          sum: p.sum ?? 0,
          bucketCounts: p.buckets ?? [],
          explicitBounds: m.boundaries ?? [],
          min: p.min,
          max: p.max,
        })),
      };
    }
    const points = m.points.map((p) => ({
      attributes: p.attributes,
      startTimeUnixNano: start,
      timeUnixNano: time,
      value: p.value ?? 0,
    }));
    return m.kind === "gauge" ? { ...head, type: "gauge", points } : {
      ...head,
      type: "sum",
      temporality: TEMPORALITY.delta,
      isMonotonic: m.kind === "counter",
      points,
    };
  });
  return { resource: o.resource, scope: o.scope, metrics: out };
}

/**
 * Reads `key=value,key=value` with percent-encoded values, as
 * `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES` are written.
 * Throws a `TypeError` for a part that is not `key=value`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseKeyValues } from "./otlp.ts";
 * assert.ok(parseKeyValues("a=1, b=x%20y").b === "x y");
 * ```
 */
export function parseKeyValues(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of raw.split(",")) {
    if (part.trim() === "") continue;
    const i = part.indexOf("=");
    const key = i > 0 ? part.slice(0, i).trim() : "";
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(key)) throw new TypeError("not key=value");
    try {
      // Defined, not assigned: a key `__proto__` is a key like any other.
      const value = decodeURIComponent(part.slice(i + 1).trim());
      Object.defineProperty(out, key, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } catch {
      throw new TypeError("not key=value");
    }
  }
  return out;
}

/**
 * A URL fit to print: credentials in it (`https://user:pass@host`, a password
 * holding `@` too) shown as `****`, and every query value as well, since
 * collectors take API keys there (`?api_key=…`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { redactUrl } from "./otlp.ts";
 * assert.ok(redactUrl("https://u:p@ss@c:4318/x?api_key=k") === "https://****@c:4318/x?api_key=****");
 * ```
 */
export function redactUrl(url: string): string {
  // The authority ends at the first "/", "?" or "#", as URL parsing has it,
  // and the credentials at its last "@".
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(.*)$/is.exec(url);
  if (m === null) return url.replace(/\?[^#]*/, "?****");
  const [, scheme, authority, rest] = m;
  const at = authority.lastIndexOf("@");
  const host = at < 0 ? authority : `****@${authority.slice(at + 1)}`;
  const q = rest.search(/[?#]/);
  if (q < 0 || rest[q] === "#") return scheme + host + rest;
  const end = rest.indexOf("#", q);
  const query = rest.slice(q + 1, end < 0 ? undefined : end);
  const shown = query.split("&").map((part) => {
    if (part === "") return part;
    const eq = part.indexOf("=");
    return eq < 0 ? "****" : `${part.slice(0, eq)}=****`;
  }).join("&");
  return `${scheme}${host}${rest.slice(0, q)}?${shown}${end < 0 ? "" : rest.slice(end)}`;
}

/**
 * The URL of one OTLP signal under a collector's base URL: the signal's path
 * (`/v1/metrics`) goes at the end of the base's path, before any query or
 * fragment, with one slash between.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { signalUrl } from "./otlp.ts";
 * assert.ok(signalUrl("https://c:4318/otlp/?tenant=a", "/v1/metrics") === "https://c:4318/otlp/v1/metrics?tenant=a");
 * ```
 */
export function signalUrl(base: string, path: string): string {
  const authority = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(base)?.[0].length ?? 0;
  const cut = base.slice(authority).search(/[?#]/);
  const end = cut < 0 ? base.length : authority + cut;
  return base.slice(0, end).replace(/\/+$/, "") + path + base.slice(end);
}

/**
 * Splits credentials out of a URL: fetch refuses a URL that holds them, so
 * they go as a `Basic` authorization header instead.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { urlCredentials } from "./otlp.ts";
 * const r = urlCredentials("https://me:s%40cret@c/v1/metrics");
 * assert.ok(r.url === "https://c/v1/metrics" && r.authorization === "Basic " + btoa("me:s@cret"));
 * ```
 */
export function urlCredentials(url: string): { url: string; authorization?: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { url };
  }
  if (u.username === "" && u.password === "") return { url };
  const user = decoded(u.username);
  const pass = decoded(u.password);
  u.username = "";
  u.password = "";
  const bytes = new TextEncoder().encode(`${user}:${pass}`);
  return { url: u.href, authorization: `Basic ${btoa(String.fromCharCode(...bytes))}` };
}

/** Percent-decoded, or as written where the encoding is broken (`%ZZ`): URL parsing lets that pass. */
function decoded(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}
