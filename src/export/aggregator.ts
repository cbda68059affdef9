/**
 * The master's cumulative metric state: every worker's harvest deltas merged
 * into sums that survive worker exits and restarts, up-down counters that hold
 * the sum over live workers, and per-worker gauges that vanish with their worker.
 *
 * @module
 */
import type { HarvestMetric, HarvestPoint, MetricDelta } from "../protocol/messages.ts";
import { canonicalAttributes } from "../protocol/attributes.ts";
import { aggregationOf } from "../protocol/aggregation.ts";
import { checkDeclaration } from "../protocol/declaration.ts";
import {
  type AggregatorOptions,
  DEFAULT_CARDINALITY_LIMIT,
  DEFAULT_INSTRUMENT_LIMIT,
  DEFAULT_MEMORY_LIMIT,
  type DropReason,
} from "./aggregator_options.ts";
import {
  CONTRIBUTION_BYTES,
  declarationOf,
  findSeries,
  forgetGauges,
  type HeldInstrument,
  type HeldSeries,
  HOLDER_BYTES,
  INSTRUMENT_BYTES,
  type KnownSeries,
  snapshot,
} from "./aggregator_state.ts";
import { WorkerSeriesIds } from "./worker_series_ids.ts";

export {
  type AggregatorOptions,
  type DeclarationChange,
  DEFAULT_CARDINALITY_LIMIT,
  DEFAULT_INSTRUMENT_LIMIT,
  DEFAULT_MEMORY_LIMIT,
  type DropReason,
} from "./aggregator_options.ts";
export { WORKER_ATTRIBUTE } from "./aggregator_state.ts";

/**
 * Merges worker harvests into cumulative state.
 *
 * Counters add every delta into a sum that never goes back when a worker
 * exits or restarts. Up-down counters add every delta too, and lose what a
 * worker added when it exits: they hold the sum over live workers, as a
 * gauge holds their values. Histograms add counts, sums and
 * bucket counts and keep the extremes. Gauges keep the last value per live
 * worker, with the worker slot as the extra attribute `worker`, and vanish
 * when {@linkcode Aggregator.removeWorker} is called for that slot.
 *
 * Points whose attributes differ only in key order belong to the same
 * series. A point may name its series by the id its worker gave it in an
 * earlier harvest (see `HarvestPoint`); the ids of a worker are forgotten with
 * it, and a point naming an id its worker never defined is dropped.
 *
 * A name keeps its declaration (kind, unit and boundaries) while a live
 * worker reports on it: another worker can never erase what the others
 * reported. Points on another declaration start the series anew at once
 * when no live worker holds the current one; else the first other
 * declaration is held pending, gathering points but exported nowhere, and
 * takes over, with what it gathered, when the last worker holding the
 * current one is removed (a reload that changes a histogram's boundaries
 * loses nothing). A pending declaration goes when its last holder is
 * removed. Points on a third declaration are dropped and counted in
 * {@linkcode Aggregator.dropped}.
 *
 * @example Merge two workers' counters and read the cumulative total
 * ```ts
 * import assert from "node:assert/strict";
 * import { Aggregator } from "./aggregator.ts";
 * const agg = new Aggregator();
 * agg.merge(1, [{ name: "app.hits", kind: "counter", points: [{ attributes: {}, value: 2 }] }]);
 * agg.merge(2, [{ name: "app.hits", kind: "counter", points: [{ attributes: {}, value: 3 }] }]);
 * agg.removeWorker(2);
 * assert.ok(agg.collect()[0].points[0].value === 5);
 * ```
 */
export class Aggregator {
  #limit: number;
  #instruments = new Map<string, HeldInstrument>();
  #drops: Record<DropReason, number> = {
    invalid: 0,
    conflict: 0,
    instrument_limit: 0,
    memory_limit: 0,
  };
  /** Points dropped by the merge under way. */
  #merging = 0;
  #memoryLimit: number;
  #bytes = 0;
  #onConflict?: AggregatorOptions["onConflict"];
  #onDeclaration?: AggregatorOptions["onDeclaration"];
  #now: () => number;
  #instrumentLimit: number;
  /** The series each worker numbered. */
  readonly #ids = new WorkerSeriesIds();
  #arrivals = 0;
  /** What each live worker has added to each up-down counter series, by worker key. */
  #contributions = new Map<number, Map<HeldSeries, number>>();

  /**
   * Creates an empty aggregator.
   *
   * @example Lower the cardinality limit
   * ```ts
   * import assert from "node:assert/strict";
   * import { Aggregator } from "./aggregator.ts";
   * const agg = new Aggregator({ cardinalityLimit: 100 });
   * assert.ok(agg.collect().length === 0);
   * ```
   */
  constructor(options: AggregatorOptions = {}) {
    const limit = options.cardinalityLimit ?? DEFAULT_CARDINALITY_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RangeError(
        `Cannot create the aggregator: cardinalityLimit must be a positive integer, got ${
          String(limit)
        }`,
      );
    }
    this.#limit = limit;
    this.#onConflict = options.onConflict;
    this.#onDeclaration = options.onDeclaration;
    this.#now = options.now ?? Date.now;
    this.#memoryLimit = options.memoryLimit ?? DEFAULT_MEMORY_LIMIT;
    this.#instrumentLimit = options.instrumentLimit ?? DEFAULT_INSTRUMENT_LIMIT;
  }

  /** Sets the memory limit (a reload): series already held stay, new ones count against it. */
  set memoryLimit(bytes: number) {
    this.#memoryLimit = bytes;
  }

  /**
   * Points dropped since this aggregator was created: conflicting
   * re-declarations and malformed points. Overflowed points are not drops.
   *
   * @example Read the drop count
   * ```ts
   * import assert from "node:assert/strict";
   * import { Aggregator } from "./aggregator.ts";
   * const agg = new Aggregator();
   * agg.merge(1, [{ name: "x", kind: "counter", points: [{ attributes: {}, value: 1 }] }]);
   * agg.merge(1, [{ name: "x", kind: "gauge", points: [{ attributes: {}, value: 1 }] }]);
   * agg.merge(1, [{ name: "x", kind: "updown", points: [{ attributes: {}, value: 1 }] }]);
   * assert.ok(agg.dropped === 1);
   * ```
   */
  get dropped(): number {
    return Object.values(this.#drops).reduce((a, b) => a + b, 0);
  }

  /**
   * Points dropped since this aggregator was created, by reason.
   *
   * @example A full table drops points for `instrument_limit`
   * ```ts
   * import assert from "node:assert/strict";
   * import { Aggregator } from "./aggregator.ts";
   * const agg = new Aggregator({ instrumentLimit: 1 });
   * agg.merge(1, [{ name: "x", kind: "counter", points: [{ attributes: {}, value: 1 }] }]);
   * agg.merge(1, [{ name: "y", kind: "counter", points: [{ attributes: {}, value: 1 }] }]);
   * assert.ok(agg.drops.instrument_limit === 1);
   * ```
   */
  get drops(): Readonly<Record<DropReason, number>> {
    return { ...this.#drops };
  }

  /**
   * The bytes the held state is estimated to take, the exposition it renders
   * to included: what {@linkcode AggregatorOptions.memoryLimit} bounds.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Aggregator } from "./aggregator.ts";
   * const agg = new Aggregator();
   * agg.merge(1, [{ name: "x", kind: "counter", points: [{ attributes: { a: "b" }, value: 1 }] }]);
   * assert.ok(agg.bytes > 0);
   * ```
   */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Merges one validated harvest from `worker`, a key unique to one worker
   * process, whose gauges are labelled with its `slot` (1..N; the key itself
   * when not given). `isolate` tells apart the reporters of one process (its
   * isolates), each numbering its series on its own. Never throws; returns
   * how many points had to be dropped.
   *
   * @example Merge a histogram
   * ```ts
   * import assert from "node:assert/strict";
   * import { Aggregator } from "./aggregator.ts";
   * const agg = new Aggregator();
   * const dropped = agg.merge(1, [{
   *   name: "http.server.request.duration",
   *   kind: "histogram",
   *   unit: "s",
   *   boundaries: [0.1, 1],
   *   points: [{ attributes: {}, count: 2, sum: 0.6, min: 0.05, max: 0.55, buckets: [1, 1, 0] }],
   * }]);
   * assert.ok(dropped === 0);
   * ```
   */
  merge(worker: number, metrics: HarvestMetric[], slot: number = worker, isolate = 0): number {
    if (!Array.isArray(metrics)) return 0;
    this.#merging = 0;
    this.#ids.select(worker, isolate);
    for (const metric of metrics) {
      try {
        this.#mergeMetric(worker, slot, metric);
      } catch {
        // A shape the validator should have refused: count it, never throw.
        this.#drop(
          "invalid",
          Array.isArray(metric?.points) ? Math.max(1, metric.points.length) : 1,
        );
      }
    }
    return this.#merging;
  }

  /**
   * Forgets the gauges of `worker` (the key it was merged with), takes what
   * it added to up-down counters back out of them, and forgets the ids it
   * gave its series; its counters and histograms stay in the cumulative
   * totals. A pending declaration it alone held goes; one held declaration
   * it was the last to report on gives way to the pending one.
   *
   * @example A gauge vanishes with its worker
   * ```ts
   * import assert from "node:assert/strict";
   * import { Aggregator } from "./aggregator.ts";
   * const agg = new Aggregator();
   * agg.merge(3, [{ name: "app.queue", kind: "gauge", points: [{ attributes: {}, value: 7 }] }]);
   * agg.removeWorker(3);
   * assert.ok(agg.collect().length === 0);
   * ```
   */
  removeWorker(worker: number): void {
    this.#bytes -= this.#ids.forget(worker);
    // An up-down counter is the sum over live workers: connections a crashed
    // worker held open are not open any more.
    const held = this.#contributions.get(worker);
    for (const [series, value] of held ?? []) series.value -= value;
    this.#bytes -= (held?.size ?? 0) * CONTRIBUTION_BYTES;
    this.#contributions.delete(worker);
    for (let instrument of this.#instruments.values()) {
      this.#unhold(instrument, worker);
      const pending = instrument.pending;
      if (pending !== undefined) {
        this.#unhold(pending, worker);
        this.#bytes -= forgetGauges(pending, worker);
        if (pending.holders.size === 0 || pending.series.size === 0) {
          instrument.pending = undefined;
          this.#release(pending);
        } else if (instrument.holders.size === 0) {
          instrument = this.#promote(instrument, pending);
        }
      }
      this.#bytes -= forgetGauges(instrument, worker);
      // A gauge nobody reports any more gives its place back: to the declaration waiting, if any.
      if (instrument.kind !== "gauge" || instrument.series.size > 0) continue;
      if (instrument.pending !== undefined) {
        this.#promote(instrument, instrument.pending);
      } else {
        this.#instruments.delete(instrument.name);
        this.#release(instrument);
      }
    }
  }

  /** Counts `worker` among those that report on the declaration of `instrument`. */
  #hold(instrument: HeldInstrument, worker: number): void {
    if (instrument.holders.has(worker)) return;
    // Counted, never refused: a holder refused would let another declaration in.
    instrument.holders.add(worker);
    this.#bytes += HOLDER_BYTES;
  }

  #unhold(instrument: HeldInstrument, worker: number): void {
    if (instrument.holders.delete(worker)) this.#bytes -= HOLDER_BYTES;
  }

  /** Puts `pending` in the place of `held`, whose last holder exited: the series start anew. */
  #promote(held: HeldInstrument, pending: HeldInstrument): HeldInstrument {
    this.#replace(held, pending);
    this.#onDeclaration?.({
      outcome: "promoted",
      name: held.name,
      held: held.declaration,
      offered: pending.declaration,
    });
    return pending;
  }

  /** Puts `next` in the table in the place of `held`, which goes with its series. */
  #replace(held: HeldInstrument, next: HeldInstrument): void {
    if (held.pending !== undefined && held.pending !== next) this.#release(held.pending);
    held.pending = undefined;
    this.#release(held);
    next.rank = held.rank;
    this.#instruments.set(held.name, next);
  }

  /** Gives back what `instrument` and its series count for: they are let go. */
  #release(instrument: HeldInstrument): void {
    for (const series of instrument.series.values()) {
      series.gone = true;
      this.#bytes -= series.bytes;
    }
    this.#bytes -= instrument.bytes + instrument.holders.size * HOLDER_BYTES;
  }

  /**
   * The rank of arrival of the instrument `name` among those this aggregator
   * has held (0 for the first), or undefined when it holds none of that name.
   * Bounded by the instruments held, unlike a list of every name ever sent.
   *
   * @example The first instrument merged comes first
   * ```ts
   * import assert from "node:assert/strict";
   * import { Aggregator } from "./aggregator.ts";
   * const agg = new Aggregator();
   * agg.merge(1, [{ name: "b", kind: "counter", points: [{ attributes: {}, value: 1 }] }]);
   * agg.merge(1, [{ name: "a", kind: "counter", points: [{ attributes: {}, value: 1 }] }]);
   * assert.ok(agg.rank("b")! < agg.rank("a")!);
   * ```
   */
  rank(name: string): number | undefined {
    return this.#instruments.get(name)?.rank;
  }

  /**
   * Instruments held: those with at least one series.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Aggregator } from "./aggregator.ts";
   * const agg = new Aggregator();
   * agg.merge(1, [{ name: "empty", kind: "counter", points: [] }]);
   * assert.ok(agg.instruments === 0);
   * ```
   */
  get instruments(): number {
    return this.#instruments.size;
  }

  /**
   * Returns a cumulative snapshot, sorted by metric name and then by the
   * canonical form of each point's attributes. Counter and up-down counter
   * values are running totals; histogram `buckets` hold one count per bucket
   * (not cumulative). The snapshot is a copy: changing it does not change the
   * aggregator. With `name`, only that metric (none when it is not held).
   *
   * @example Snapshot a gauge per worker
   * ```ts
   * import assert from "node:assert/strict";
   * import { Aggregator } from "./aggregator.ts";
   * const agg = new Aggregator();
   * agg.merge(1, [{ name: "app.queue", kind: "gauge", points: [{ attributes: {}, value: 4 }] }]);
   * const [metric] = agg.collect();
   * assert.ok(metric.points[0].attributes.worker === "1");
   * assert.deepEqual(agg.collect("app.misses"), []);
   * ```
   */
  collect(name?: string): MetricDelta[] {
    if (name === undefined) return snapshot(this.#instruments);
    // One metric read a second pays for that one alone.
    const held = this.#instruments.get(name);
    return held === undefined ? [] : snapshot(new Map([[name, held]]));
  }

  /** Counts `n` points dropped for `reason`. */
  #drop(reason: DropReason, n = 1): void {
    this.#drops[reason] += n;
    this.#merging += n;
  }

  /** Whether `bytes` more fit in the budget; if so they are counted as held. */
  #reserve(bytes: number): boolean {
    if (this.#bytes + bytes > this.#memoryLimit) return false;
    this.#bytes += bytes;
    return true;
  }

  #mergeMetric(worker: number, slot: number, metric: HarvestMetric): void {
    const points = Array.isArray(metric.points) ? metric.points : [];
    const ids = Array.isArray(metric.ids) ? metric.ids : [];
    const values = Array.isArray(metric.values) ? metric.values : [];
    const size = points.length + ids.length;
    // A metric with no points takes no slot: naming instruments costs nothing.
    if (size === 0) return;
    // A declaration the validator would have refused (a direct caller's): its points are dropped.
    if (checkDeclaration(metric) !== undefined) return this.#drop("invalid", size);
    const aggregation = aggregationOf(metric.kind);
    const unit = metric.unit ?? "";
    const held = this.#instruments.get(metric.name);
    const declared = declarationOf(metric.kind, unit, metric.boundaries);
    let instrument = held;
    if (held !== undefined && held.declaration !== declared) {
      if (held.holders.size > 0 && held.pending?.declaration === declared) {
        instrument = held.pending;
      } else if (held.holders.size > 0 && held.pending !== undefined) {
        // Live workers report on the held declaration and another waits:
        // a third must never erase either.
        this.#onConflict?.(worker, metric.name, held.declaration, declared);
        return this.#drop("conflict", size);
      } else {
        // A new declaration, to take the held one's place at once (no live
        // worker reports on it) or once its last holder exits.
        instrument = undefined;
      }
    }
    const fresh = instrument === undefined;
    if (instrument === undefined) {
      if (held === undefined && this.#instruments.size >= this.#instrumentLimit) {
        return this.#drop("instrument_limit", size);
      }
      const boundaries = metric.kind === "histogram" ? [...(metric.boundaries ?? [])] : undefined;
      instrument = {
        name: metric.name,
        kind: metric.kind,
        aggregation,
        nBuckets: boundaries === undefined ? 0 : boundaries.length + 1,
        unit,
        description: metric.description,
        boundaries,
        series: new Map(),
        admitted: 0,
        rank: 0,
        // Held once, and written twice per scrape (# HELP and # TYPE).
        bytes: INSTRUMENT_BYTES +
          3 * (metric.name.length + unit.length + (metric.description?.length ?? 0)) +
          16 * (boundaries?.length ?? 0),
        declaration: declared,
        holders: new Set(),
      };
      if (!this.#reserve(instrument.bytes)) return this.#drop("memory_limit", size);
    }
    // A description given later than the declaration is taken up, if it fits.
    const description = metric.description;
    if (instrument.description === undefined && description !== undefined) {
      if (this.#reserve(3 * description.length)) {
        instrument.description = description;
        instrument.bytes += 3 * description.length;
      }
    }
    for (const point of points) this.#mergePoint(instrument, worker, slot, point);
    if (ids.length > 0) this.#mergeColumns(instrument, worker, slot, ids, values);
    if (!fresh) {
      this.#hold(instrument, worker);
      return;
    }
    // Only an instrument that holds a series takes a slot in the table.
    if (instrument.series.size === 0) {
      this.#bytes -= instrument.bytes;
      return;
    }
    this.#hold(instrument, worker);
    if (held === undefined) {
      instrument.rank = this.#arrivals++;
      this.#instruments.set(metric.name, instrument);
      return;
    }
    // Its series start now: exporters must not take them for the held ones'.
    instrument.startMs = this.#now();
    const outcome = held.holders.size > 0 ? "pending" : "replaced";
    if (outcome === "pending") held.pending = instrument;
    else this.#replace(held, instrument);
    this.#onDeclaration?.({
      outcome,
      name: metric.name,
      held: held.declaration,
      offered: declared,
      worker,
    });
  }

  /** Merges the `ids` and `values` columns of a counter, up-down counter or gauge. */
  #mergeColumns(
    instrument: HeldInstrument,
    worker: number,
    slot: number,
    ids: number[],
    values: number[],
  ): void {
    const kind = instrument.kind;
    if (kind === "histogram" || ids.length !== values.length) {
      return this.#drop("invalid", ids.length);
    }
    const point = { value: 0 };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const entry = this.#ids.get(id);
      const value = values[i];
      if (entry === undefined || instrument.aggregation.validateValue(value) !== undefined) {
        this.#drop("invalid");
        continue;
      }
      const series = this.#seriesFor(instrument, worker, slot, entry, true);
      if (series === undefined) {
        this.#drop("memory_limit");
        continue;
      }
      point.value = value;
      if (!instrument.aggregation.fits(series, point)) {
        this.#drop("invalid");
        continue;
      }
      if (kind === "updown" && !this.#contribute(worker, series, value)) continue;
      instrument.aggregation.accumulate(series, point);
    }
  }

  /** The attributes of a point and their canonical key, from the point or its worker's ids. */
  #resolve(point: HarvestPoint): KnownSeries | undefined {
    const attributes = point.attributes;
    if (attributes !== undefined) {
      if (typeof attributes !== "object" || attributes === null) return undefined;
      // Cleaned as the reporter cleans them: one set, one series, at both ends.
      return canonicalAttributes(attributes);
    }
    return this.#ids.get(point.id);
  }

  /**
   * The series `known` goes to: the one its id led to last while that still
   * stands, else found (or created) by its attributes and, for an id,
   * remembered for the next point. Undefined when a new series does not fit
   * in the memory budget.
   */
  #seriesFor(
    instrument: HeldInstrument,
    worker: number,
    slot: number,
    known: KnownSeries,
    numbered: boolean,
  ): HeldSeries | undefined {
    const last = known.series;
    if (last !== undefined && last.gone !== true && known.instrument === instrument) return last;
    const series = findSeries(
      instrument,
      { worker, slot, known, limit: this.#limit },
      (bytes) => this.#reserve(bytes),
    );
    if (series !== undefined && numbered) {
      known.instrument = instrument;
      known.series = series;
      known.key = undefined;
    }
    return series;
  }

  /**
   * Adds `value` to what `worker` holds in an up-down counter's `series`, to
   * take it back at its exit; false (and dropped) when the budget has no room
   * to remember one more worker's part.
   */
  #contribute(worker: number, series: HeldSeries, value: number): boolean {
    let held = this.#contributions.get(worker);
    if (held === undefined) this.#contributions.set(worker, held = new Map());
    const before = held.get(series);
    if (before === undefined && !this.#reserve(CONTRIBUTION_BYTES)) {
      this.#drop("memory_limit");
      return false;
    }
    held.set(series, (before ?? 0) + value);
    return true;
  }

  #mergePoint(
    instrument: HeldInstrument,
    worker: number,
    slot: number,
    point: HarvestPoint,
  ): void {
    if (typeof point !== "object" || point === null) return this.#drop("invalid");
    if (instrument.aggregation.validate(point, instrument.nBuckets) !== undefined) {
      return this.#drop("invalid");
    }
    const known = this.#resolve(point);
    if (known === undefined) return this.#drop("invalid");
    const numbered = point.id !== undefined;
    const series = this.#seriesFor(instrument, worker, slot, known, numbered);
    if (series === undefined) return this.#drop("memory_limit");
    // The id is remembered once its series is held: an id never keeps
    // attributes the master does not hold.
    const remembered = !numbered || point.attributes === undefined ||
      this.#ids.define(point.id!, known, (bytes) => this.#reserve(bytes));
    if (!remembered) return this.#drop("memory_limit");
    // A sum past the largest double would be Infinity from then on: the point is dropped instead.
    if (!instrument.aggregation.fits(series, point)) return this.#drop("invalid");
    if (instrument.kind === "updown" && !this.#contribute(worker, series, point.value!)) return;
    instrument.aggregation.accumulate(series, point);
  }
}
