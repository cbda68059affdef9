/**
 * Prometheus text exposition (format 0.0.4) of cumulative metrics, named the
 * way OpenTelemetry's Prometheus exporters name them: `http.server.request.duration`
 * with unit `s` becomes `http_server_request_duration_seconds`, counters end in
 * `_total`, and attribute keys become label names with dots turned into
 * underscores.
 *
 * @module
 */

import type { Attributes, AttributeValue, MetricDelta, PointDelta } from "../protocol/messages.ts";

/** The `Content-Type` of a Prometheus text exposition. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A metric left out of an exposition, as reported to {@linkcode RenderPrometheusOptions.onSkip}. */
export interface PrometheusSkip {
  /** The metric's OpenTelemetry name. */
  name: string;
  /** The Prometheus name it maps to. */
  prometheusName: string;
  /** Data points left out. */
  points: number;
  /** Why, in a few words. */
  reason: string;
}

/** Options of {@linkcode renderPrometheus}. */
export interface RenderPrometheusOptions {
  /**
   * Called for every metric or series left out because its Prometheus name
   * or label set is already taken by an earlier one.
   */
  onSkip?: (skip: PrometheusSkip) => void;
  /**
   * Sample names already shown elsewhere (another exposition rendered beside
   * this one): a metric that would use one is left out and reported.
   */
  reserved?: Iterable<string>;
}

type _Type = "counter" | "gauge" | "histogram";

interface _Family {
  name: string;
  type: _Type;
  boundaries: string;
  lines: string[];
  series: Set<string>;
}

// Maps, not object literals: a unit is a worker's string, and `toString` must
// not find Object.prototype's.
const _UNITS = new Map<string, string>(Object.entries({
  d: "days",
  h: "hours",
  min: "minutes",
  s: "seconds",
  ms: "milliseconds",
  us: "microseconds",
  ns: "nanoseconds",
  By: "bytes",
  KiBy: "kibibytes",
  MiBy: "mebibytes",
  GiBy: "gibibytes",
  TiBy: "tibibytes",
  KBy: "kilobytes",
  MBy: "megabytes",
  GBy: "gigabytes",
  TBy: "terabytes",
  m: "meters",
  V: "volts",
  A: "amperes",
  J: "joules",
  W: "watts",
  g: "grams",
  Cel: "celsius",
  Hz: "hertz",
  "%": "percent",
}));

const _PER_UNITS = new Map<string, string>(Object.entries({
  s: "second",
  m: "minute",
  h: "hour",
  d: "day",
  w: "week",
  mo: "month",
  y: "year",
}));

/**
 * Renders metrics as a Prometheus text exposition (format 0.0.4).
 *
 * Counters become `counter` families ending in `_total`, up-down counters
 * and gauges become `gauge` families, and histograms become `histogram`
 * families with cumulative `_bucket` samples (the last one `le="+Inf"`),
 * `_sum` and `_count`. Each family gets one `# HELP` line (the description, or
 * the metric's own name) and one `# TYPE` line. Metrics without points are
 * left out.
 *
 * When two metrics map to the same Prometheus name with the same type (and,
 * for histograms, the same buckets), their series share one family; a series
 * whose labels are already present is left out. A metric whose name clashes
 * with another type's, or with another family's samples, is left out whole.
 * Every such omission is reported to `options.onSkip`, so the first metric
 * given always wins.
 *
 * @example Render a counter
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderPrometheus } from "./prometheus.ts";
 * const text = renderPrometheus([
 *   { name: "app.cache.hits", kind: "counter", points: [{ attributes: { "cache.name": "users" }, value: 3 }] },
 * ]);
 * assert.ok(text.includes('app_cache_hits_total{cache_name="users"} 3\n'));
 * ```
 */
export function renderPrometheus(
  metrics: MetricDelta[],
  options: RenderPrometheusOptions = {},
): string {
  const steps = _render(metrics, options, Infinity);
  let step = steps.next();
  while (step.done !== true) step = steps.next();
  return step.value;
}

/** Options of {@linkcode renderPrometheusAsync}. */
export interface RenderPrometheusAsyncOptions extends RenderPrometheusOptions {
  /** Lines written between two pauses (default 5,000). */
  linesPerTurn?: number;
  /** Resolves when rendering may go on (default: a 0 ms timer, after the loop polls for I/O). */
  pause?: () => Promise<void>;
}

/**
 * Renders the same text as {@linkcode renderPrometheus}, pausing after every
 * `linesPerTurn` lines so that a large exposition never holds the event loop
 * for long: what arrives meanwhile (a worker's harvest, a probe) is read
 * between two turns. `metrics` must not change until the promise settles.
 *
 * @example Render with a pause after every line
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderPrometheus, renderPrometheusAsync } from "./prometheus.ts";
 * const metrics = [{ name: "app.hits", kind: "counter" as const, points: [{ attributes: {}, value: 3 }] }];
 * let pauses = 0;
 * const text = await renderPrometheusAsync(metrics, {
 *   linesPerTurn: 1,
 *   pause: () => Promise.resolve(void pauses++),
 * });
 * assert.equal(text, renderPrometheus(metrics));
 * assert.ok(pauses > 0);
 * ```
 */
export async function renderPrometheusAsync(
  metrics: MetricDelta[],
  options: RenderPrometheusAsyncOptions = {},
): Promise<string> {
  const pause = options.pause ?? _nextTurn;
  const steps = _render(metrics, options, Math.max(1, options.linesPerTurn ?? 5_000));
  let step = steps.next();
  while (step.done !== true) {
    await pause();
    step = steps.next();
  }
  return step.value;
}

/**
 * A timer rather than a microtask or `setImmediate`: Deno runs many
 * immediates for each poll, and the point is to let I/O in.
 */
function _nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Renders `metrics`, yielding whenever `budget` lines were written since the last yield. */
function* _render(
  metrics: MetricDelta[],
  options: RenderPrometheusOptions,
  budget: number,
): Generator<void, string, void> {
  let written = 0;
  const families = new Map<string, _Family>();
  /** Every sample name in use, mapped to the family that owns it. */
  const owners = new Map<string, string>();
  for (const name of options.reserved ?? []) owners.set(name, name);
  const order: _Family[] = [];
  const skip = (metric: MetricDelta, prometheusName: string, points: number, reason: string) => {
    if (points > 0) options.onSkip?.({ name: metric.name, prometheusName, points, reason });
  };

  for (const metric of metrics) {
    if (!Array.isArray(metric.points) || metric.points.length === 0) continue;
    const type: _Type = metric.kind === "counter"
      ? "counter"
      : metric.kind === "histogram"
      ? "histogram"
      : "gauge";
    const name = prometheusMetricName(metric);
    const boundaries = type === "histogram" ? (metric.boundaries ?? []) : [];
    const boundariesKey = boundaries.map(formatPrometheusNumber).join(",");
    let family = families.get(name);
    if (family !== undefined) {
      if (family.type !== type || family.boundaries !== boundariesKey) {
        skip(metric, name, metric.points.length, `"${name}" is already a ${family.type}`);
        continue;
      }
    } else {
      const samples = type === "histogram"
        ? [name, `${name}_bucket`, `${name}_sum`, `${name}_count`]
        : [name];
      const taken = samples.find((s) => owners.has(s));
      if (taken !== undefined) {
        skip(metric, name, metric.points.length, `"${taken}" is already in use`);
        continue;
      }
      family = { name, type, boundaries: boundariesKey, lines: [], series: new Set() };
      for (const s of samples) owners.set(s, name);
      families.set(name, family);
      order.push(family);
      const help = metric.description !== undefined && metric.description !== ""
        ? metric.description
        : metric.name;
      family.lines.push(`# HELP ${name} ${_escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    }
    let duplicates = 0;
    const histogram = type === "histogram";
    // Each bucket's `le="…"} ` once per metric, not once per series.
    const les = histogram ? boundaries.map((b) => `le="${formatPrometheusNumber(b)}"} `) : [];
    for (const point of metric.points) {
      // The label text is the series' identity: escaping keeps it one-to-one.
      const labels = _labelText(point.attributes ?? {}, histogram);
      if (family.series.has(labels)) {
        duplicates++;
        continue;
      }
      family.series.add(labels);
      if (histogram) _histogramLines(family, les, labels, point);
      else family.lines.push(name + labels + " " + formatPrometheusNumber(point.value));
      written += histogram ? les.length + 3 : 1;
      if (written >= budget) {
        written = 0;
        yield;
      }
    }
    skip(metric, name, duplicates, `a series with the same labels is already in "${name}"`);
  }

  let text = "";
  for (const family of order) text += family.lines.join("\n") + "\n";
  return text;
}

/**
 * Returns the Prometheus name of a metric family: the name with every
 * character other than letters, digits and `_` turned into `_`, then the
 * unit's suffix (unless the name already ends with it), then `_total` for
 * counters. Histogram samples add `_bucket`, `_sum` and `_count` to it.
 *
 * @example Name a histogram and a counter
 * ```ts
 * import assert from "node:assert/strict";
 * import { prometheusMetricName } from "./prometheus.ts";
 * assert.ok(
 *   prometheusMetricName({ name: "http.server.request.duration", kind: "histogram", unit: "s" }) ===
 *     "http_server_request_duration_seconds",
 * );
 * assert.ok(prometheusMetricName({ name: "app.cache.hits", kind: "counter" }) === "app_cache_hits_total");
 * ```
 */
export function prometheusMetricName(metric: Pick<MetricDelta, "name" | "kind" | "unit">): string {
  let name = _sanitize(metric.name);
  if (/^[0-9]/.test(name)) name = `_${name}`;
  const counter = metric.kind === "counter";
  if (counter && name.endsWith("_total") && name !== "_total") name = name.slice(0, -6);
  const suffix = prometheusUnit(metric.unit ?? "", metric.kind === "gauge");
  if (suffix !== "" && name !== suffix && !name.endsWith(`_${suffix}`)) name += `_${suffix}`;
  if (counter) name += "_total";
  return name;
}

/**
 * Returns the name suffix for a UCUM unit as OpenTelemetry's Prometheus
 * exporters spell it: `s` → `seconds`, `By/s` → `bytes_per_second`, `1` →
 * `ratio` for gauges (nothing otherwise), and `{...}` annotations dropped.
 * An unknown unit is kept, with invalid characters turned into `_`.
 *
 * @example Map units
 * ```ts
 * import assert from "node:assert/strict";
 * import { prometheusUnit } from "./prometheus.ts";
 * assert.ok(prometheusUnit("ms") === "milliseconds");
 * assert.ok(prometheusUnit("{request}/s") === "per_second");
 * assert.ok(prometheusUnit("1", true) === "ratio");
 * ```
 */
export function prometheusUnit(unit: string, gauge = false): string {
  const bare = unit.replace(/\{[^}]*\}/g, "").trim();
  if (bare === "") return "";
  if (bare === "1") return gauge ? "ratio" : "";
  const slash = bare.indexOf("/");
  if (slash < 0) return _trim(_sanitize(_UNITS.get(bare) ?? bare));
  const num = bare.slice(0, slash).trim();
  const den = bare.slice(slash + 1).trim();
  const parts: string[] = [];
  if (num !== "" && num !== "1") parts.push(_UNITS.get(num) ?? num);
  if (den !== "") parts.push(`per_${_PER_UNITS.get(den) ?? _UNITS.get(den) ?? den}`);
  return _trim(_sanitize(parts.join("_")));
}

/**
 * Returns the Prometheus label name of an attribute key: every character
 * other than letters, digits and `_` becomes `_`, and a leading digit gets
 * the prefix `key_`.
 *
 * @example Name a label
 * ```ts
 * import assert from "node:assert/strict";
 * import { prometheusLabelName } from "./prometheus.ts";
 * assert.ok(prometheusLabelName("otel.metric.overflow") === "otel_metric_overflow");
 * ```
 */
export function prometheusLabelName(key: string): string {
  const name = _sanitize(key);
  if (name === "") return "key";
  return /^[0-9]/.test(name) ? `key_${name}` : name;
}

/**
 * Formats a sample value as Prometheus parses it: `+Inf`, `-Inf`, `NaN`, and
 * integers without an exponent whenever JavaScript can print them so.
 *
 * @example Format special values
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatPrometheusNumber } from "./prometheus.ts";
 * assert.ok(formatPrometheusNumber(Infinity) === "+Inf");
 * assert.ok(formatPrometheusNumber(1e6) === "1000000");
 * ```
 */
export function formatPrometheusNumber(value: number | undefined): string {
  if (typeof value !== "number" || Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  // Integers below 1e21 print without an exponent; -0 prints as "0".
  return String(value);
}

/**
 * Builds the master's own metrics in the shape {@linkcode renderPrometheus}
 * takes: `forklift.workers` (gauge), `forklift.worker.restarts` and
 * `forklift.dropped_points` (counters, one series per `reason`) and
 * `forklift.harvests` (counter). Put them first when rendering, so a worker's metric of the same
 * name never displaces them. Seed `restarts` with the reasons you know at 0 so
 * each series exists before its first restart.
 *
 * @example Render the master's metrics
 * ```ts
 * import assert from "node:assert/strict";
 * import { masterMetrics, renderPrometheus } from "./prometheus.ts";
 * const text = renderPrometheus(masterMetrics({ workers: 4, restarts: { crash: 1 }, harvests: 10, dropped: { invalid: 2 } }));
 * assert.ok(text.includes('forklift_worker_restarts_total{reason="crash"} 1\n'));
 * ```
 */
export function masterMetrics(state: {
  workers: number;
  restarts: Record<string, number>;
  harvests: number;
  /** Dropped points by reason. */
  dropped: Readonly<Record<string, number>>;
  /** The OTLP exporter's counts, when one runs. */
  otlp?: { exports: number; failures: number; retries: number; dropped: number; bytes: number };
}): MetricDelta[] {
  const reasons = Object.keys(state.restarts).sort();
  const otlp = state.otlp;
  const counter = (name: string, unit: string, description: string, value: number) => ({
    name,
    kind: "counter" as const,
    unit,
    description,
    points: [{ attributes: {}, value }],
  });
  return [
    ...(otlp === undefined ? [] : [
      counter(
        "forklift.otlp.exports",
        "{batch}",
        "Batches an OTLP collector accepted",
        otlp.exports,
      ),
      counter(
        "forklift.otlp.failures",
        "{request}",
        "OTLP requests that failed, retries included",
        otlp.failures,
      ),
      counter("forklift.otlp.retries", "{request}", "OTLP requests sent again", otlp.retries),
      counter(
        "forklift.otlp.dropped_batches",
        "{batch}",
        "OTLP batches given up: refused, redirected, or unsent when a stop ran out of time",
        otlp.dropped,
      ),
      counter("forklift.otlp.sent", "By", "OTLP request bytes sent", otlp.bytes),
    ]),
    {
      name: "forklift.dropped_points",
      kind: "counter",
      unit: "{point}",
      description: "Metric points dropped by workers and by the master, by reason",
      points: Object.keys(state.dropped).sort().map((reason) => ({
        attributes: { reason },
        value: state.dropped[reason],
      })),
    },
    {
      name: "forklift.harvests",
      kind: "counter",
      unit: "{harvest}",
      description: "Harvests merged from workers",
      points: [{ attributes: {}, value: state.harvests }],
    },
    {
      name: "forklift.worker.restarts",
      kind: "counter",
      unit: "{restart}",
      description: "Worker restarts, by reason",
      points: reasons.map((reason) => ({ attributes: { reason }, value: state.restarts[reason] })),
    },
    {
      name: "forklift.workers",
      kind: "gauge",
      unit: "{worker}",
      description: "Worker slots whose worker is ready",
      points: [{ attributes: {}, value: state.workers }],
    },
  ];
}

function _sanitize(s: string): string {
  return s.replace(/[^a-zA-Z0-9_]+/g, "_").replace(/__+/g, "_");
}

function _trim(s: string): string {
  return s.replace(/^_+|_+$/g, "");
}

function _attributeText(value: AttributeValue): string {
  return typeof value === "number" ? formatPrometheusNumber(value) : String(value);
}

/**
 * Label pairs sorted by name. Keys that map to the same label name have their
 * values joined with `;` in the order of the original keys.
 */
function _labels(attributes: Attributes, histogram: boolean): [string, string][] {
  const byName = new Map<string, [string, string][]>();
  for (const [key, value] of Object.entries(attributes)) {
    const name = _labelName(key);
    if (histogram && name === "le") continue;
    const list = byName.get(name) ?? [];
    list.push([key, _attributeText(value)]);
    byName.set(name, list);
  }
  const labels: [string, string][] = [];
  for (const [name, list] of byName) {
    list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    labels.push([name, list.map((e) => e[1]).join(";")]);
  }
  labels.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return labels;
}

/** Label names already worked out: a scrape asks for the same few keys on every series. */
const _labelNames = new Map<string, string>();
/** Bound on {@linkcode _labelNames}: a worker's keys are many only when hostile. */
const _LABEL_NAMES_MAX = 4096;

function _labelName(key: string): string {
  let name = _labelNames.get(key);
  if (name === undefined) {
    name = prometheusLabelName(key);
    if (_labelNames.size >= _LABEL_NAMES_MAX) _labelNames.clear();
    _labelNames.set(key, name);
  }
  return name;
}

/**
 * The `{name="value",…}` text of a series ("" without labels). Attributes
 * whose label names come out in strictly ascending order (the aggregator's
 * keys are sorted, so nearly all) are written in one pass; the others go the
 * general way, which sorts and merges.
 */
function _labelText(attributes: Attributes, histogram: boolean): string {
  let text = "";
  let last = "";
  for (const key in attributes) {
    if (!Object.hasOwn(attributes, key)) continue;
    const name = _labelName(key);
    if (name <= last || (histogram && name === "le")) {
      return _labelPairsText(_labels(attributes, histogram));
    }
    last = name;
    text += (text === "" ? "{" : ",") + name + '="' +
      _escapeLabel(_attributeText(attributes[key])) +
      '"';
  }
  return text === "" ? "" : text + "}";
}

function _labelPairsText(labels: [string, string][]): string {
  if (labels.length === 0) return "";
  return `{${labels.map(([k, v]) => `${k}="${_escapeLabel(v)}"`).join(",")}}`;
}

function _histogramLines(
  family: _Family,
  les: string[],
  own: string,
  point: PointDelta,
): void {
  const buckets = point.buckets ?? [];
  // The labels are written once and shared by every bucket line: a series
  // with long labels and many buckets must not cost a copy of them per line.
  const bucket = family.name + "_bucket" + (own === "" ? "{" : own.slice(0, -1) + ",");
  const lines = family.lines;
  let cumulative = 0;
  for (let i = 0; i < les.length; i++) {
    cumulative += buckets[i] ?? 0;
    lines.push(bucket + les[i] + formatPrometheusNumber(cumulative));
  }
  cumulative += buckets[les.length] ?? 0;
  const count = point.count ?? cumulative;
  lines.push(
    `${bucket}le="+Inf"} ${formatPrometheusNumber(count)}`,
    `${family.name}_sum${own} ${formatPrometheusNumber(point.sum ?? 0)}`,
    `${family.name}_count${own} ${formatPrometheusNumber(count)}`,
  );
}

/** Characters a label value must escape: most values have none. */
const _LABEL_SPECIAL = /[\\"\n]/;

function _escapeLabel(s: string): string {
  if (!_LABEL_SPECIAL.test(s)) return s;
  return s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function _escapeHelp(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}
