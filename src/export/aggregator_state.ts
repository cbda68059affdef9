/**
 * The shape of the master's held metric state (instruments, their series,
 * the series each worker numbered), what each part costs in the memory
 * budget, and the snapshot exporters read.
 *
 * @module
 */

import type { Attributes, InstrumentKind, MetricDelta, PointDelta } from "../protocol/messages.ts";
import { canonicalAttributes, OVERFLOW_ATTRIBUTE } from "../protocol/attributes.ts";
import type { Aggregation } from "../protocol/aggregation.ts";

/** The attribute added to every gauge point: the worker slot that reported it. */
export const WORKER_ATTRIBUTE = "worker";

/**
 * What a series costs beyond its attributes: its entry, object and key, and
 * an id's entry in a worker's table. Rough on purpose: the budget bounds, it
 * does not account.
 */
const SERIES_BYTES = 240;
/** What an instrument costs beyond its names: rough too. */
export const INSTRUMENT_BYTES = 400;
/** What one series id a worker defined costs. */
export const ID_BYTES = 96;
/** What an up-down counter series costs per worker that added to it. */
export const CONTRIBUTION_BYTES = 64;
/** What a worker's place among the holders of a declaration costs. */
export const HOLDER_BYTES = 32;
/** What each line of a series' exposition costs beyond its name and labels (`le`, value). */
const LINE_BYTES = 48;

/** One series the master holds: its attributes, its running totals and their cost. */
export interface HeldSeries {
  attributes: Attributes;
  /** Removed from its instrument: a worker's id must not lead back to it. */
  gone?: boolean;
  /** Gauges only: the worker (its unique key) that owns the series. */
  worker?: number;
  value: number;
  count: number;
  sum: number;
  min?: number;
  max?: number;
  buckets?: number[];
  /** What it counts for in the memory budget. */
  bytes: number;
}

/**
 * A series a worker numbered: its attributes and their canonical key, and the
 * series its points went to last, so that the next point by id goes straight there.
 */
export interface KnownSeries {
  attributes: Attributes;
  /** The canonical key, until the series is found: 64 workers' ids must not each keep a copy. */
  key?: string;
  instrument?: HeldInstrument;
  series?: HeldSeries;
}

/** One instrument the master holds: its declaration, its series and who holds it. */
export interface HeldInstrument {
  name: string;
  kind: InstrumentKind;
  /** The arithmetic of its kind. */
  aggregation: Aggregation;
  /** Histogram buckets a point carries (0 for other kinds). */
  nBuckets: number;
  unit: string;
  description?: string;
  boundaries?: number[];
  series: Map<string, HeldSeries>;
  /**
   * The keys of `series` sorted, kept between scrapes while no series comes
   * or goes: a scrape of 10,000 unchanged series must not sort them again.
   */
  sorted?: string[];
  /** Series other than overflow series. */
  admitted: number;
  /** Its rank of arrival among the instruments this aggregator has held. */
  rank: number;
  /** What it counts for in the memory budget, its series aside. */
  bytes: number;
  /** Its declaration in one string (see `declarationOf`). */
  declaration: string;
  /** The live workers (keys) that sent points on its declaration: what holds it. */
  holders: Set<number>;
  /** The one other declaration waiting for the holders to exit, exported nowhere. */
  pending?: HeldInstrument;
  /** When its series started (Unix ms), when later than the master's start. */
  startMs?: number;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Whether these are the overflow series' attributes: the flag alone (and a
 * gauge's worker). A point that carries the flag beside other attributes is
 * an ordinary series, under the cap like any other.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isOverflow } from "./aggregator_state.ts";
 * assert.ok(isOverflow({ "otel.metric.overflow": true, worker: "1" }));
 * assert.ok(!isOverflow({ "otel.metric.overflow": true, route: "/" }));
 * ```
 */
export function isOverflow(attributes: Attributes): boolean {
  if (attributes[OVERFLOW_ATTRIBUTE] !== true) return false;
  return Object.keys(attributes).every((k) => k === OVERFLOW_ATTRIBUTE || k === WORKER_ATTRIBUTE);
}

/**
 * An instrument's declaration in one string: `kind unit [boundaries]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { declarationOf } from "./aggregator_state.ts";
 * assert.equal(declarationOf("histogram", "s", [0.1, 1]), "histogram s [0.1,1]");
 * ```
 */
export function declarationOf(kind: InstrumentKind, unit: string, boundaries?: number[]): string {
  return kind === "histogram" ? `${kind} ${unit} [${boundaries ?? []}]` : `${kind} ${unit}`;
}

/**
 * What a new series is estimated to cost: its entry and key (about the
 * attributes' size), held, and its lines in each scrape, every one repeating
 * the labels: one per bucket and three more for a histogram.
 */
function seriesBytes(instrument: HeldInstrument, key: string): number {
  const boundaries = instrument.boundaries?.length ?? 0;
  const lines = instrument.kind === "histogram" ? boundaries + 3 : 1;
  return SERIES_BYTES + 2 * key.length + 8 * (boundaries + 1) +
    lines * (LINE_BYTES + instrument.name.length + key.length);
}

function snapshotPoint(instrument: HeldInstrument, series: HeldSeries): PointDelta {
  return { attributes: { ...series.attributes }, ...instrument.aggregation.copy(series) };
}

/**
 * A cumulative snapshot of `instruments`, sorted by metric name and then by
 * the canonical form of each point's attributes (see `Aggregator.collect`).
 *
 * @example Nothing held, nothing to show
 * ```ts
 * import assert from "node:assert/strict";
 * import { snapshot } from "./aggregator_state.ts";
 * assert.deepEqual(snapshot(new Map()), []);
 * ```
 */
export function snapshot(instruments: ReadonlyMap<string, HeldInstrument>): MetricDelta[] {
  const names = [...instruments.keys()].sort(compareText);
  const out: MetricDelta[] = [];
  for (const name of names) {
    const instrument = instruments.get(name)!;
    if (instrument.series.size === 0) continue;
    let keys = instrument.sorted;
    if (keys === undefined || keys.length !== instrument.series.size) {
      keys = instrument.sorted = [...instrument.series.keys()].sort(compareText);
    }
    const metric: MetricDelta = { name, kind: instrument.kind, points: [] };
    if (instrument.unit !== "") metric.unit = instrument.unit;
    if (instrument.description !== undefined) metric.description = instrument.description;
    if (instrument.boundaries) metric.boundaries = [...instrument.boundaries];
    if (instrument.startMs !== undefined) metric.startMs = instrument.startMs;
    if (instrument.kind !== "gauge") {
      // One series a key: only a gauge's keys carry the worker after the attributes.
      for (const key of keys) {
        metric.points.push(snapshotPoint(instrument, instrument.series.get(key)!));
      }
      out.push(metric);
      continue;
    }
    // Gauges: while a slot rolls, its two generations may report the same
    // series; the newer worker's value is the one shown.
    const shown = new Map<string, HeldSeries>();
    for (const key of keys) {
      const series = instrument.series.get(key)!;
      const id = key.split("\u0001")[0];
      const other = shown.get(id);
      if (other === undefined || (series.worker ?? 0) > (other.worker ?? 0)) {
        shown.set(id, series);
      }
    }
    for (const series of shown.values()) metric.points.push(snapshotPoint(instrument, series));
    out.push(metric);
  }
  return out;
}

/**
 * The series of `instrument` a point of `known` from `worker` (gauges
 * labelled with its `slot`) goes to, created when new (or the overflow
 * series, past `limit`); undefined when a new one does not fit: `reserve`
 * says whether its bytes do.
 *
 * @example A gauge series is its worker's, labelled with its slot
 * ```ts
 * import assert from "node:assert/strict";
 * import { aggregationOf } from "../protocol/aggregation.ts";
 * import { findSeries } from "./aggregator_state.ts";
 * const instrument = {
 *   name: "app.queue", kind: "gauge" as const, aggregation: aggregationOf("gauge"), nBuckets: 0,
 *   unit: "", series: new Map(), admitted: 0, rank: 0, bytes: 0, declaration: "gauge ",
 *   holders: new Set<number>(),
 * };
 * const known = { attributes: { q: "mail" } };
 * const series = findSeries(instrument, { worker: 9, slot: 2, known, limit: 10 }, () => true);
 * assert.deepEqual(series?.attributes, { q: "mail", worker: "2" });
 * ```
 */
export function findSeries(
  instrument: HeldInstrument,
  { worker, slot, known, limit }: {
    worker: number;
    slot: number;
    known: KnownSeries;
    limit: number;
  },
  reserve: (bytes: number) => boolean,
): HeldSeries | undefined {
  const gauge = instrument.kind === "gauge";
  // A gauge series belongs to one worker process: two generations of a slot
  // (a roll) each keep theirs, and each one's go when it exits.
  const owned = (a: Attributes) => `${canonicalAttributes(a).key}\u0001${worker}`;
  let attributes: Attributes | undefined = gauge
    ? { ...known.attributes, [WORKER_ATTRIBUTE]: String(slot) }
    : undefined;
  let key = attributes === undefined
    ? known.key ?? canonicalAttributes(known.attributes).key
    : owned(attributes);
  let series = instrument.series.get(key);
  if (series !== undefined) {
    // A worker's definition of a series the master holds: remember the held copy, not a second one.
    if (!gauge) known.attributes = series.attributes;
    return series;
  }
  // The attributes are copied only for a new series: most points hit one.
  attributes ??= { ...known.attributes };
  if (!isOverflow(attributes) && instrument.admitted >= limit - 1) {
    attributes = { [OVERFLOW_ATTRIBUTE]: true };
    if (gauge) attributes[WORKER_ATTRIBUTE] = String(slot);
    key = gauge ? owned(attributes) : canonicalAttributes(attributes).key;
    series = instrument.series.get(key);
    if (series !== undefined) return series;
  }
  const bytes = seriesBytes(instrument, key);
  if (!reserve(bytes)) return undefined;
  series = { attributes, value: 0, count: 0, sum: 0, bytes };
  if (gauge) series.worker = worker;
  if (instrument.kind === "histogram") {
    series.buckets = new Array(instrument.boundaries!.length + 1).fill(0);
  }
  instrument.series.set(key, series);
  instrument.sorted = undefined;
  if (!isOverflow(attributes)) instrument.admitted++;
  return series;
}

/**
 * Removes the series of a gauge `instrument` that `worker` owns; returns
 * the bytes they were counted for.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { aggregationOf } from "../protocol/aggregation.ts";
 * import { findSeries, forgetGauges } from "./aggregator_state.ts";
 * const instrument = {
 *   name: "app.queue", kind: "gauge" as const, aggregation: aggregationOf("gauge"), nBuckets: 0,
 *   unit: "", series: new Map(), admitted: 0, rank: 0, bytes: 0, declaration: "gauge ",
 *   holders: new Set<number>(),
 * };
 * findSeries(instrument, { worker: 9, slot: 2, known: { attributes: {} }, limit: 10 }, () => true);
 * assert.ok(forgetGauges(instrument, 9) > 0 && instrument.series.size === 0);
 * ```
 */
export function forgetGauges(instrument: HeldInstrument, worker: number): number {
  if (instrument.kind !== "gauge") return 0;
  let bytes = 0;
  for (const [key, series] of instrument.series) {
    if (series.worker !== worker) continue;
    series.gone = true;
    bytes += series.bytes;
    instrument.series.delete(key);
    instrument.sorted = undefined;
    if (!isOverflow(series.attributes)) instrument.admitted--;
  }
  return bytes;
}
