/**
 * The master's cumulative metric state: every worker's harvest deltas merged
 * into sums that survive worker exits and restarts, up-down counters that hold
 * the sum over live workers, and per-worker gauges that vanish with their worker.
 *
 * @module
 */

import type {
  Attributes,
  HarvestMetric,
  HarvestPoint,
  InstrumentKind,
  MetricDelta,
  PointDelta,
} from "../protocol/messages.ts";
import { attributesKey, CARDINALITY_LIMIT, OVERFLOW_ATTRIBUTE } from "../protocol/attributes.ts";
import { isSeriesId } from "../protocol/messages.ts";

/** Options of an {@linkcode Aggregator}. */
export interface AggregatorOptions {
  /**
   * Most series one instrument may hold, the overflow series included; further
   * attribute sets are merged into the overflow series. Default 2000.
   */
  cardinalityLimit?: number;
  /**
   * Told when `worker` sends points on a declaration (kind, unit or
   * boundaries) other than both the one held for the name and the one
   * pending: those points are dropped. Called for every such metric:
   * throttle what it writes.
   */
  onConflict?: (worker: number, name: string, held: string, offered: string) => void;
  /**
   * Told when a name's declaration changes or is put on hold (see
   * {@linkcode DeclarationChange}). Called for every such change: throttle
   * what it writes.
   */
  onDeclaration?: (change: DeclarationChange) => void;
  /** The clock (Unix ms) that dates a series set started anew. Default `Date.now`. */
  now?: () => number;
  /** Most instruments kept; points of further ones are dropped and counted. Default 2000. */
  instrumentLimit?: number;
  /**
   * Bytes the held state may take, as {@linkcode Aggregator.bytes} estimates
   * them; a point that would need more (a new series, instrument or series id)
   * is dropped and counted. Default {@linkcode DEFAULT_MEMORY_LIMIT}.
   */
  memoryLimit?: number;
}

/**
 * A change of a name's declaration: `pending`, points on `offered` from
 * `worker` are kept aside while live workers still report on `held`;
 * `replaced`, no live worker reported on `held`, so `offered` took its place
 * at once (`worker` sent it); `promoted`, the last live worker reporting on
 * `held` exited and the pending `offered` took its place, with what it had
 * gathered. Each of the last two starts the name's series anew.
 */
export interface DeclarationChange {
  outcome: "pending" | "replaced" | "promoted";
  name: string;
  held: string;
  offered: string;
  /** The worker that sent `offered` (not given for `promoted`). */
  worker?: number;
}

/** Why the aggregator dropped a point. */
export type DropReason = "invalid" | "conflict" | "instrument_limit" | "memory_limit";

/**
 * The estimated bytes the master's metric state may hold when no limit is
 * given (the `metrics_memory_limit` setting's default): with what a scrape
 * and an OTLP export build from it, the master stays under the ceiling the
 * reliability page measures.
 */
export const DEFAULT_MEMORY_LIMIT = 16 * 1024 * 1024;

/**
 * What a series costs beyond its attributes: its entry, object and key, and
 * an id's entry in a worker's table. Rough on purpose: the budget bounds, it
 * does not account.
 */
const _SERIES_BYTES = 240;
const _INSTRUMENT_BYTES = 400;
const _ID_BYTES = 96;
/** What an up-down counter series costs per worker that added to it. */
const _CONTRIBUTION_BYTES = 64;
/** What a worker's place among the holders of a declaration costs. */
const _HOLDER_BYTES = 32;
/** What each line of a series' exposition costs beyond its name and labels (`le`, value). */
const _LINE_BYTES = 48;

/** Instruments the master keeps when no limit is given: two workers' worth of the reporter's own cap. */
export const DEFAULT_INSTRUMENT_LIMIT = 2000;

export { OVERFLOW_ATTRIBUTE };

/** The attribute added to every gauge point: the worker slot that reported it. */
export const WORKER_ATTRIBUTE = "worker";

/** Series per instrument when no limit is given. */
export const DEFAULT_CARDINALITY_LIMIT = CARDINALITY_LIMIT;

interface _Series {
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
interface _Known {
  attributes: Attributes;
  /** The canonical key, until the series is found: 64 workers' ids must not each keep a copy. */
  key?: string;
  instrument?: _Instrument;
  series?: _Series;
}

interface _Instrument {
  name: string;
  kind: InstrumentKind;
  unit: string;
  description?: string;
  boundaries?: number[];
  series: Map<string, _Series>;
  /** Series other than overflow series. */
  admitted: number;
  /** Its rank of arrival among the instruments this aggregator has held. */
  rank: number;
  /** What it counts for in the memory budget, its series aside. */
  bytes: number;
  /** Its declaration in one string (see `_declaration`). */
  declaration: string;
  /** The live workers (keys) that sent points on its declaration: what holds it. */
  holders: Set<number>;
  /** The one other declaration waiting for the holders to exit, exported nowhere. */
  pending?: _Instrument;
  /** When its series started (Unix ms), when later than the master's start. */
  startMs?: number;
}

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
  #instruments = new Map<string, _Instrument>();
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
  /** Each worker's numbered series, by worker key, then stream (its isolates), then id. */
  #known = new Map<number, Map<number, _Known[]>>();
  /** How many ids each worker has defined, its streams together: what they cost. */
  #idCount = new Map<number, number>();
  /** The numbered series of the worker and stream being merged, by id. */
  #ids: _Known[] | undefined;
  #stream = 0;
  #arrivals = 0;
  /** What each live worker has added to each up-down counter series, by worker key. */
  #contributions = new Map<number, Map<_Series, number>>();

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
    const d = this.#drops;
    return d.invalid + d.conflict + d.instrument_limit + d.memory_limit;
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
   * when not given). `stream` tells apart the reporters of one process (its
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
  merge(worker: number, metrics: HarvestMetric[], slot: number = worker, stream = 0): number {
    if (!Array.isArray(metrics)) return 0;
    this.#merging = 0;
    this.#ids = this.#known.get(worker)?.get(stream);
    this.#stream = stream;
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
    this.#known.delete(worker);
    this.#bytes -= (this.#idCount.get(worker) ?? 0) * _ID_BYTES;
    this.#idCount.delete(worker);
    // An up-down counter is the sum over live workers: connections a crashed
    // worker held open are not open any more.
    const held = this.#contributions.get(worker);
    for (const [series, value] of held ?? []) series.value -= value;
    this.#bytes -= (held?.size ?? 0) * _CONTRIBUTION_BYTES;
    this.#contributions.delete(worker);
    for (let instrument of this.#instruments.values()) {
      this.#unhold(instrument, worker);
      const pending = instrument.pending;
      if (pending !== undefined) {
        this.#unhold(pending, worker);
        this.#forgetGauges(pending, worker);
        if (pending.holders.size === 0 || pending.series.size === 0) {
          instrument.pending = undefined;
          this.#release(pending);
        } else if (instrument.holders.size === 0) {
          instrument = this.#promote(instrument, pending);
        }
      }
      this.#forgetGauges(instrument, worker);
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
  #hold(instrument: _Instrument, worker: number): void {
    if (instrument.holders.has(worker)) return;
    // Counted, never refused: a holder refused would let another declaration in.
    instrument.holders.add(worker);
    this.#bytes += _HOLDER_BYTES;
  }

  #unhold(instrument: _Instrument, worker: number): void {
    if (instrument.holders.delete(worker)) this.#bytes -= _HOLDER_BYTES;
  }

  /** Removes the series of a gauge `instrument` that `worker` owns. */
  #forgetGauges(instrument: _Instrument, worker: number): void {
    if (instrument.kind !== "gauge") return;
    for (const [key, series] of instrument.series) {
      if (series.worker !== worker) continue;
      series.gone = true;
      this.#bytes -= series.bytes;
      instrument.series.delete(key);
      if (!_isOverflow(series.attributes)) instrument.admitted--;
    }
  }

  /** Puts `pending` in the place of `held`, whose last holder exited: the series start anew. */
  #promote(held: _Instrument, pending: _Instrument): _Instrument {
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
  #replace(held: _Instrument, next: _Instrument): void {
    if (held.pending !== undefined && held.pending !== next) this.#release(held.pending);
    held.pending = undefined;
    this.#release(held);
    next.rank = held.rank;
    this.#instruments.set(held.name, next);
  }

  /** Gives back what `instrument` and its series count for: they are let go. */
  #release(instrument: _Instrument): void {
    for (const series of instrument.series.values()) {
      series.gone = true;
      this.#bytes -= series.bytes;
    }
    this.#bytes -= instrument.bytes + instrument.holders.size * _HOLDER_BYTES;
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
   * (not cumulative). The
   * snapshot is a copy: changing it does not change the aggregator.
   *
   * @example Snapshot a gauge per worker
   * ```ts
   * import assert from "node:assert/strict";
   * import { Aggregator } from "./aggregator.ts";
   * const agg = new Aggregator();
   * agg.merge(1, [{ name: "app.queue", kind: "gauge", points: [{ attributes: {}, value: 4 }] }]);
   * const [metric] = agg.collect();
   * assert.ok(metric.points[0].attributes.worker === "1");
   * ```
   */
  collect(): MetricDelta[] {
    const names = [...this.#instruments.keys()].sort(_compare);
    const out: MetricDelta[] = [];
    for (const name of names) {
      const instrument = this.#instruments.get(name)!;
      if (instrument.series.size === 0) continue;
      const keys = [...instrument.series.keys()].sort(_compare);
      const metric: MetricDelta = { name, kind: instrument.kind, points: [] };
      if (instrument.unit !== "") metric.unit = instrument.unit;
      if (instrument.description !== undefined) metric.description = instrument.description;
      if (instrument.boundaries) metric.boundaries = [...instrument.boundaries];
      if (instrument.startMs !== undefined) metric.startMs = instrument.startMs;
      // Gauges: while a slot rolls, its two generations may report the same
      // series; the newer worker's value is the one shown.
      const shown = new Map<string, _Series>();
      for (const key of keys) {
        const series = instrument.series.get(key)!;
        const id = key.split("\u0001")[0];
        const other = shown.get(id);
        if (other === undefined || (series.worker ?? 0) > (other.worker ?? 0)) {
          shown.set(id, series);
        }
      }
      for (const series of shown.values()) metric.points.push(_snapshot(instrument.kind, series));
      out.push(metric);
    }
    return out;
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
    const unit = metric.unit ?? "";
    const held = this.#instruments.get(metric.name);
    const declared = _declaration(metric.kind, unit, metric.boundaries);
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
        unit,
        description: metric.description,
        boundaries,
        series: new Map(),
        admitted: 0,
        rank: 0,
        // Held once, and written twice per scrape (# HELP and # TYPE).
        bytes: _INSTRUMENT_BYTES +
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
    instrument: _Instrument,
    worker: number,
    slot: number,
    ids: number[],
    values: number[],
  ): void {
    const kind = instrument.kind;
    if (kind === "histogram" || ids.length !== values.length) {
      return this.#drop("invalid", ids.length);
    }
    const known = this.#ids;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const entry = isSeriesId(id) ? known?.[id] : undefined;
      const value = values[i];
      if (entry === undefined || !_finite(value) || (kind === "counter" && value < 0)) {
        this.#drop("invalid");
        continue;
      }
      const series = this.#seriesFor(instrument, worker, slot, entry, true);
      if (series === undefined) {
        this.#drop("memory_limit");
        continue;
      }
      if (kind === "updown" && !this.#contribute(worker, series, value)) continue;
      if (kind === "gauge") series.value = value;
      else series.value += value;
    }
  }

  /** The attributes of a point and their canonical key, from the point or its worker's ids. */
  #resolve(point: HarvestPoint): _Known | undefined {
    const attributes = point.attributes;
    if (attributes !== undefined) {
      if (typeof attributes !== "object" || attributes === null) return undefined;
      return { attributes, key: canonicalAttributes(attributes) };
    }
    return isSeriesId(point.id) ? this.#ids?.[point.id] : undefined;
  }

  /**
   * Remembers `known` as `worker`'s series `id`, once its series is held: an
   * id never keeps attributes the master does not hold. False when the
   * budget has no room for one more id.
   */
  #define(worker: number, id: number, known: _Known): boolean {
    if (this.#ids?.[id] === undefined) {
      if (!this.#reserve(_ID_BYTES)) return false;
      this.#idCount.set(worker, (this.#idCount.get(worker) ?? 0) + 1);
    }
    if (this.#ids === undefined) {
      let streams = this.#known.get(worker);
      if (streams === undefined) this.#known.set(worker, streams = new Map());
      streams.set(this.#stream, this.#ids = []);
    }
    this.#ids[id] = known;
    return true;
  }

  /**
   * The series `known` goes to: the one its id led to last while that still
   * stands, else found (or created) by its attributes and, for an id,
   * remembered for the next point. Undefined when a new series does not fit
   * in the memory budget.
   */
  #seriesFor(
    instrument: _Instrument,
    worker: number,
    slot: number,
    known: _Known,
    numbered: boolean,
  ): _Series | undefined {
    const last = known.series;
    if (last !== undefined && last.gone !== true && known.instrument === instrument) return last;
    const series = this.#seriesOf(instrument, worker, slot, known);
    if (series !== undefined && numbered) {
      known.instrument = instrument;
      known.series = series;
      known.key = undefined;
    }
    return series;
  }

  /**
   * The series a point with these attributes goes to, created when new (or
   * the overflow series); undefined when a new one does not fit in the budget.
   */
  #seriesOf(
    instrument: _Instrument,
    worker: number,
    slot: number,
    known: _Known,
  ): _Series | undefined {
    const gauge = instrument.kind === "gauge";
    // A gauge series belongs to one worker process: two generations of a slot
    // (a roll) each keep theirs, and each one's go when it exits.
    const owned = (a: Attributes) => `${canonicalAttributes(a)}\u0001${worker}`;
    let attributes: Attributes | undefined = gauge
      ? { ...known.attributes, [WORKER_ATTRIBUTE]: String(slot) }
      : undefined;
    let key = attributes === undefined
      ? known.key ?? canonicalAttributes(known.attributes)
      : owned(attributes);
    let series = instrument.series.get(key);
    if (series !== undefined) {
      // A worker's definition of a series the master holds: remember the held copy, not a second one.
      if (!gauge) known.attributes = series.attributes;
      return series;
    }
    // The attributes are copied only for a new series: most points hit one.
    attributes ??= { ...known.attributes };
    if (!_isOverflow(attributes) && instrument.admitted >= this.#limit - 1) {
      attributes = { [OVERFLOW_ATTRIBUTE]: true };
      if (gauge) attributes[WORKER_ATTRIBUTE] = String(slot);
      key = gauge ? owned(attributes) : canonicalAttributes(attributes);
      series = instrument.series.get(key);
      if (series !== undefined) return series;
    }
    const bytes = _seriesBytes(instrument, key);
    if (!this.#reserve(bytes)) return undefined;
    series = { attributes, value: 0, count: 0, sum: 0, bytes };
    if (gauge) series.worker = worker;
    if (instrument.kind === "histogram") {
      series.buckets = new Array(instrument.boundaries!.length + 1).fill(0);
    }
    instrument.series.set(key, series);
    if (!_isOverflow(attributes)) instrument.admitted++;
    return series;
  }

  /**
   * Adds `value` to what `worker` holds in an up-down counter's `series`, to
   * take it back at its exit; false (and dropped) when the budget has no room
   * to remember one more worker's part.
   */
  #contribute(worker: number, series: _Series, value: number): boolean {
    let held = this.#contributions.get(worker);
    if (held === undefined) this.#contributions.set(worker, held = new Map());
    const before = held.get(series);
    if (before === undefined && !this.#reserve(_CONTRIBUTION_BYTES)) {
      this.#drop("memory_limit");
      return false;
    }
    held.set(series, (before ?? 0) + value);
    return true;
  }

  #mergePoint(
    instrument: _Instrument,
    worker: number,
    slot: number,
    point: HarvestPoint,
  ): void {
    if (!_validPoint(instrument, point)) return this.#drop("invalid");
    const known = this.#resolve(point);
    if (known === undefined) return this.#drop("invalid");
    const numbered = point.id !== undefined;
    const series = this.#seriesFor(instrument, worker, slot, known, numbered);
    if (series === undefined) return this.#drop("memory_limit");
    if (numbered && point.attributes !== undefined && !this.#define(worker, point.id!, known)) {
      return this.#drop("memory_limit");
    }
    switch (instrument.kind) {
      case "counter":
        series.value += point.value!;
        break;
      case "updown":
        if (!this.#contribute(worker, series, point.value!)) return;
        series.value += point.value!;
        break;
      case "gauge":
        series.value = point.value!;
        break;
      case "histogram": {
        series.count += point.count!;
        series.sum += point.sum!;
        const buckets = point.buckets!;
        for (let i = 0; i < buckets.length; i++) series.buckets![i] += buckets[i];
        if (point.min !== undefined && (series.min === undefined || point.min < series.min)) {
          series.min = point.min;
        }
        if (point.max !== undefined && (series.max === undefined || point.max > series.max)) {
          series.max = point.max;
        }
        break;
      }
    }
  }
}

/**
 * The canonical key of an attribute set (see {@linkcode attributesKey}).
 *
 * @example Key order does not matter
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalAttributes } from "./aggregator.ts";
 * assert.ok(canonicalAttributes({ a: 1, b: "x" }) === canonicalAttributes({ b: "x", a: 1 }));
 * ```
 */
export const canonicalAttributes: (attributes: Attributes) => string = attributesKey;

function _compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Whether these are the overflow series' attributes: the flag alone (and a
 * gauge's worker). A point that carries the flag beside other attributes is
 * an ordinary series, under the cap like any other.
 */
function _isOverflow(attributes: Attributes): boolean {
  if (attributes[OVERFLOW_ATTRIBUTE] !== true) return false;
  return Object.keys(attributes).every((k) => k === OVERFLOW_ATTRIBUTE || k === WORKER_ATTRIBUTE);
}

/** An instrument's declaration in one string: `kind unit [boundaries]`. */
function _declaration(kind: InstrumentKind, unit: string, boundaries?: number[]): string {
  return kind === "histogram" ? `${kind} ${unit} [${boundaries ?? []}]` : `${kind} ${unit}`;
}

function _finite(x: unknown): x is number {
  return typeof x === "number" && Number.isFinite(x);
}

function _validPoint(instrument: _Instrument, point: HarvestPoint): boolean {
  if (typeof point !== "object" || point === null) return false;
  if (instrument.kind !== "histogram") {
    if (!_finite(point.value)) return false;
    return instrument.kind !== "counter" || point.value >= 0;
  }
  const buckets = point.buckets;
  if (!Array.isArray(buckets) || buckets.length !== instrument.boundaries!.length + 1) {
    return false;
  }
  if (!buckets.every((c) => Number.isSafeInteger(c) && c >= 0)) return false;
  if (!Number.isSafeInteger(point.count) || point.count! < 0 || !_finite(point.sum)) return false;
  if (point.min !== undefined && !_finite(point.min)) return false;
  return point.max === undefined || _finite(point.max);
}

/**
 * What a new series is estimated to cost: its entry and key (about the
 * attributes' size), held, and its lines in each scrape, every one repeating
 * the labels: one per bucket and three more for a histogram.
 */
function _seriesBytes(instrument: _Instrument, key: string): number {
  const boundaries = instrument.boundaries?.length ?? 0;
  const lines = instrument.kind === "histogram" ? boundaries + 3 : 1;
  return _SERIES_BYTES + 2 * key.length + 8 * (boundaries + 1) +
    lines * (_LINE_BYTES + instrument.name.length + key.length);
}

function _snapshot(kind: InstrumentKind, series: _Series): PointDelta {
  const attributes = { ...series.attributes };
  if (kind !== "histogram") return { attributes, value: series.value };
  const point: PointDelta = {
    attributes,
    count: series.count,
    sum: series.sum,
    buckets: [...series.buckets!],
  };
  if (series.min !== undefined) point.min = series.min;
  if (series.max !== undefined) point.max = series.max;
  return point;
}
