/**
 * In-process metric storage of the reporter: one series table per instrument,
 * delta accumulation, the cut that turns accumulations into harvest points,
 * and the merge of unacknowledged harvests.
 *
 * The hot path ({@linkcode SeriesTable.get}) walks a small trie keyed by the
 * attribute names and values in the order the caller wrote them: no string is
 * built, nothing is sorted and nothing is allocated once a series exists. Each
 * trie node remembers the step last taken from it, so a combination recorded
 * again and again costs two comparisons per attribute, not a Map lookup.
 * Canonicalisation (sorted keys, cleaned values, series that differ only in key
 * order merged into one) happens once, the first time a combination is seen.
 *
 * @module
 */

import {
  type Attributes,
  type HarvestMetric,
  type HarvestPoint,
  type InstrumentKind,
  MAX_SERIES_ID,
  type MetricDelta,
  type PointDelta,
} from "../protocol/messages.ts";
import {
  canonicalAttributes,
  CARDINALITY_LIMIT,
  OVERFLOW_ATTRIBUTE,
} from "../protocol/attributes.ts";
import { aggregationOf } from "../protocol/aggregation.ts";

export { CARDINALITY_LIMIT, OVERFLOW_ATTRIBUTE };

/**
 * One time series of one instrument: what was recorded since the last cut.
 *
 * Every kind uses the same shape so the hot path stays monomorphic:
 * counters and up-down counters sum into `value`, gauges overwrite it, and
 * histograms fill `count`, `sum`, `min`, `max` and `buckets`.
 *
 * @example Read a series after recording
 * ```ts
 * import assert from "node:assert/strict";
 * import { SeriesTable } from "./storage.ts";
 * const table = new SeriesTable(0);
 * const series = table.get({ route: "/" });
 * series.value += 1;
 * series.dirty = true;
 * assert.ok(series.attributes.route === "/");
 * ```
 */
export class Series {
  /** Canonical attributes: keys sorted, values cleaned. */
  readonly attributes: Attributes;
  /** Whether anything was recorded since the last cut. */
  dirty = false;
  /** Counter and up-down delta, or the gauge's last value. */
  value = 0;
  /** Histogram: values recorded. */
  count = 0;
  /** Histogram: sum of the values recorded. */
  sum = 0;
  /** Histogram: smallest value recorded (`Infinity` when none). */
  min: number = Infinity;
  /** Histogram: largest value recorded (`-Infinity` when none). */
  max: number = -Infinity;
  /** Per-bucket counts (not cumulative); empty unless a histogram. */
  readonly buckets: number[];
  /** The id harvests give this series once numbered, -1 before (or when ids ran out). */
  id = -1;
  /** The first harvest cut that carried its attributes with its id; 0 before it. */
  definedIn = 0;

  /**
   * Creates an empty series.
   *
   * @param attributes Canonical attributes of the series.
   * @param nBuckets Number of histogram buckets, 0 for other kinds.
   */
  constructor(attributes: Attributes, nBuckets: number) {
    this.attributes = attributes;
    this.buckets = Array.from({ length: nBuckets }, () => 0);
  }

  /**
   * Histogram: adds `value` (finite, `>= 0`) in bucket `bucket`. Returns false,
   * and changes nothing, when the sum would pass the largest double.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Series } from "./storage.ts";
   * const s = new Series({}, 2);
   * s.observe(0.5, 1);
   * assert.ok(s.count === 1 && s.sum === 0.5 && s.buckets[1] === 1);
   * ```
   */
  observe(value: number, bucket: number): boolean {
    const sum = this.sum + value;
    if (sum === Infinity) return false;
    this.count++;
    this.sum = sum;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    this.buckets[bucket]++;
    this.dirty = true;
    return true;
  }
}

/** A trie node: one attribute (name, value) step of a recorded combination. */
class _Node {
  series: Series | undefined = undefined;
  /** Inline cache: the attribute name most often seen next, and its values. */
  name: string | undefined = undefined;
  values: Map<unknown, _Node> | undefined = undefined;
  next: Map<string, Map<unknown, _Node>> | undefined = undefined;
  /**
   * The step last taken from here: its name, its value and the node it led
   * to. Nodes are never removed, so it never goes stale.
   */
  hitName: string | undefined = undefined;
  hitValue: unknown = undefined;
  hitChild: _Node | undefined = undefined;

  /** The child for (name, value), remembered as the last step; undefined when none. */
  step(name: string, value: unknown): _Node | undefined {
    const values = name === this.name ? this.values : this.next?.get(name);
    const child = values === undefined ? undefined : values.get(value);
    if (child !== undefined) {
      this.hitName = name;
      this.hitValue = value;
      this.hitChild = child;
    }
    return child;
  }
}

/**
 * The series of one instrument, found by their attributes.
 *
 * At most `limit` distinct canonical series exist; past that, points go to a
 * single series with attributes `{ "otel.metric.overflow": true }`.
 *
 * @example Overflow past the limit
 * ```ts
 * import assert from "node:assert/strict";
 * import { SeriesTable } from "./storage.ts";
 * const table = new SeriesTable(0, 1);
 * table.get({ user: "a" });
 * assert.ok(table.get({ user: "b" }).attributes["otel.metric.overflow"] === true);
 * ```
 */
export class SeriesTable {
  readonly #root = new _Node();
  readonly #canonical = new Map<string, Series>();
  readonly #nBuckets: number;
  readonly #limit: number;
  #overflow: Series | undefined;
  #nodes = 0;

  /**
   * Creates an empty table.
   *
   * @param nBuckets Number of histogram buckets, 0 for other kinds.
   * @param limit Most series, the overflow series included (at least 1).
   */
  constructor(nBuckets: number, limit: number = CARDINALITY_LIMIT) {
    this.#nBuckets = nBuckets;
    this.#limit = limit;
  }

  /** Number of distinct series, the overflow series included. */
  get size(): number {
    return this.#canonical.size + (this.#overflow === undefined ? 0 : 1);
  }

  /**
   * Returns the series for these attributes, creating it when new.
   *
   * @example Same series whatever the key order
   * ```ts
   * import assert from "node:assert/strict";
   * import { SeriesTable } from "./storage.ts";
   * const table = new SeriesTable(0);
   * assert.ok(table.get({ a: 1, b: 2 }) === table.get({ b: 2, a: 1 }));
   * ```
   */
  get(attributes: Readonly<Record<string, unknown>> | undefined): Series {
    // Kept small, the slow steps in methods of their own, so that engines
    // inline it (and the recording around it) into the caller.
    let node: _Node | undefined = this.#root;
    if (attributes !== undefined) {
      for (const name in attributes) {
        const value = attributes[name];
        // A name from for-in is a string, so an unset hitName never matches.
        node = name === node.hitName && value === node.hitValue
          ? node.hitChild
          : node.step(name, value);
        if (node === undefined) return this.#insert(attributes);
      }
    }
    return node.series ?? this.#insert(attributes);
  }

  /** Calls `fn` on every series, the overflow series last. */
  forEach(fn: (series: Series) => void): void {
    for (const series of this.#canonical.values()) fn(series);
    if (this.#overflow !== undefined) fn(this.#overflow);
  }

  #insert(attributes: Readonly<Record<string, unknown>> | undefined): Series {
    const { attributes: clean, key } = canonicalAttributes(attributes);
    let series = this.#canonical.get(key);
    if (series === undefined) {
      // As OpenTelemetry counts its cardinality limit, and as the master does:
      // the overflow series is one of the `limit`.
      if (this.#canonical.size < this.#limit - 1) {
        series = new Series(clean, this.#nBuckets);
        this.#canonical.set(key, series);
      } else {
        series = this.#overflow ??= new Series({ [OVERFLOW_ATTRIBUTE]: true }, this.#nBuckets);
      }
    }
    // Remember the raw path unless the trie is already large (a flood of
    // overflowing combinations must not grow memory) or a value is an object
    // (compared by identity, it would never hit again).
    if (this.#nodes < 8 * this.#limit) this.#remember(attributes, series);
    return series;
  }

  #remember(attributes: Readonly<Record<string, unknown>> | undefined, series: Series): void {
    if (attributes !== undefined) {
      for (const name in attributes) {
        const v = attributes[name];
        if (typeof v === "object" && v !== null) return;
      }
    }
    let node = this.#root;
    if (attributes !== undefined) {
      for (const name in attributes) {
        const value = attributes[name];
        node.next ??= new Map();
        let values = node.next.get(name);
        if (values === undefined) {
          values = new Map();
          node.next.set(name, values);
        }
        if (node.name === undefined) {
          node.name = name;
          node.values = values;
        }
        let child = values.get(value);
        if (child === undefined) {
          child = new _Node();
          values.set(value, child);
          this.#nodes++;
        }
        node = child;
      }
    }
    node.series = series;
  }
}

/** Description of an instrument, as sent with each of its harvests. */
export interface InstrumentInfo {
  /** Instrument name, unique in the process. */
  name: string;
  /** Counter, up-down counter, gauge or histogram. */
  kind: InstrumentKind;
  /** Unit of measure, UCUM style. */
  unit?: string;
  /** What the instrument measures. */
  description?: string;
  /** Histogram bucket upper bounds. */
  boundaries?: number[];
}

/** An instrument's description and its series. */
export interface InstrumentState extends InstrumentInfo {
  /** The instrument's series. */
  table: SeriesTable;
}

/** What one cut of the storage yields: points since the previous cut. */
export interface Cut {
  /** Instruments with at least one changed series. */
  metrics: MetricDelta[];
  /** Points dropped in the interval. */
  dropped: number;
}

/** A cut for a master: points numbered, attributes left out where the master knows them. */
export interface HarvestCut {
  /** Instruments with at least one changed series. */
  metrics: HarvestMetric[];
  /** Points dropped in the interval. */
  dropped: number;
  /** This cut's number, for {@linkcode Storage.acknowledge}. */
  number: number;
}

/** Most instruments one process keeps; the ones after them record nothing and count drops. */
export const INSTRUMENT_LIMIT = 1000;

/** A table that takes no series: every recording on it is dropped. */
class NoSeries extends SeriesTable {
  constructor() {
    super(0, 0);
  }
  override get(): Series {
    throw new RangeError("instrument limit reached");
  }
}

/**
 * All instruments of one process and their accumulations since the last cut.
 *
 * @example Cut a counter
 * ```ts
 * import assert from "node:assert/strict";
 * import { Storage } from "./storage.ts";
 * const storage = new Storage();
 * const { table } = storage.register({ name: "hits", kind: "counter" });
 * const s = table.get(undefined);
 * s.value += 2;
 * s.dirty = true;
 * assert.ok(storage.cut().metrics[0].points[0].value === 2);
 * ```
 */
export class Storage {
  readonly #instruments = new Map<string, InstrumentState>();
  /** Points dropped (bad values) since the last cut. */
  dropped = 0;
  /** True until the first recording; see {@linkcode Storage.wake}. */
  idle = true;
  /** Called once, on the first recording (the standalone lazy start). */
  onWake: (() => void) | undefined = undefined;
  #nextId = 0;
  #cuts = 0;
  /** The last harvest cut the master acknowledged in full. */
  #acknowledged = 0;

  /**
   * Registers an instrument, or returns the one already registered under that
   * name when its kind, unit and boundaries agree.
   *
   * @throws {TypeError} When the name is taken by a different instrument.
   */
  register(info: InstrumentInfo): InstrumentState {
    const old = this.#instruments.get(info.name);
    if (old === undefined && this.#instruments.size >= INSTRUMENT_LIMIT) {
      // One instrument too many (a name built from data): it records nothing,
      // and every recording on it is counted as dropped.
      return { ...info, table: new NoSeries() };
    }
    if (old !== undefined) {
      if (
        old.kind !== info.kind || old.unit !== info.unit ||
        String(old.boundaries) !== String(info.boundaries)
      ) {
        throw new TypeError(
          `Cannot create ${info.kind} "${info.name}": the name is already used by a ${old.kind} with another unit or boundaries`,
        );
      }
      return old;
    }
    const nBuckets = info.boundaries === undefined ? 0 : info.boundaries.length + 1;
    const state: InstrumentState = { ...info, table: new SeriesTable(nBuckets) };
    this.#instruments.set(info.name, state);
    return state;
  }

  /** Called after each recording: wakes the storage on the first one. */
  recorded(): void {
    if (this.idle) this.wake();
  }

  /** Counts one dropped point and wakes the storage. */
  drop(): void {
    this.dropped++;
    if (this.idle) this.wake();
  }

  /** Leaves the idle state and calls {@linkcode Storage.onWake} once. */
  wake(): void {
    if (!this.idle) return;
    this.idle = false;
    const fn = this.onWake;
    if (fn !== undefined) {
      try {
        fn();
      } catch {
        // A failing lazy start must never reach the code that recorded.
      }
    }
  }

  /**
   * Returns every series changed since the previous cut, as delta points, and
   * resets them.
   */
  cut(): Cut {
    return this.#cut(false) as Cut;
  }

  /**
   * Like {@linkcode Storage.cut}, for a harvest: each point carries its
   * series' id, and its attributes too until a cut that carried them is
   * acknowledged (see {@linkcode Storage.acknowledge}).
   *
   * @example The attributes go until the master has them
   * ```ts
   * import assert from "node:assert/strict";
   * import { Storage } from "./storage.ts";
   * const storage = new Storage();
   * const s = storage.register({ name: "hits", kind: "counter" }).table.get({ a: 1 });
   * s.value = 1, s.dirty = true;
   * const first = storage.harvestCut();
   * storage.acknowledge(first.number);
   * s.value = 1, s.dirty = true;
   * assert.deepEqual(first.metrics[0].points, [{ id: 0, attributes: { a: 1 }, value: 1 }]);
   * // Once acknowledged, the series goes by its id alone, in columns.
   * const second = storage.harvestCut().metrics[0];
   * assert.deepEqual([second.points, second.ids, second.values], [[], [0], [1]]);
   * ```
   */
  harvestCut(): HarvestCut {
    return { ...this.#cut(true), number: this.#cuts };
  }

  /** The master holds every point of harvest cut `number` and of those before it. */
  acknowledge(number: number): void {
    if (number > this.#acknowledged) this.#acknowledged = number;
  }

  #cut(numbered: boolean): { metrics: HarvestMetric[]; dropped: number } {
    const metrics: HarvestMetric[] = [];
    const cut = numbered ? ++this.#cuts : 0;
    /** Whether the master holds the series' attributes under its id (numbering it when new). */
    const known = (s: Series): boolean => {
      if (!numbered) return false;
      if (s.id < 0 && this.#nextId < MAX_SERIES_ID) s.id = this.#nextId++;
      if (s.id < 0) return false;
      if (s.definedIn > 0 && s.definedIn <= this.#acknowledged) return true;
      // Acknowledgements are cumulative: the first cut that carried it is the one to wait for.
      if (s.definedIn === 0) s.definedIn = cut;
      return false;
    };
    for (const inst of this.#instruments.values()) {
      const points: HarvestPoint[] = [];
      const ids: number[] = [];
      const values: number[] = [];
      const hist = inst.kind === "histogram";
      const aggregation = aggregationOf(inst.kind);
      inst.table.forEach((s) => {
        if (!s.dirty) return;
        s.dirty = false;
        if (hist) {
          if (s.count === 0) return;
          const p: HarvestPoint = known(s) ? { id: s.id } : _defined(s, numbered);
          points.push(Object.assign(p, aggregation.copy(s)));
          aggregation.reset(s);
          return;
        }
        if (known(s)) {
          ids.push(s.id);
          values.push(s.value);
        } else {
          const p = _defined(s, numbered);
          p.value = s.value;
          points.push(p);
        }
        aggregation.reset(s);
      });
      if (points.length === 0 && ids.length === 0) continue;
      const m = describe(inst, points);
      if (ids.length > 0) {
        m.ids = ids;
        m.values = values;
      }
      metrics.push(m);
    }
    const dropped = this.dropped;
    this.dropped = 0;
    return { metrics, dropped };
  }
}

/** A point that carries its series' attributes, with its id when numbered. */
function _defined(s: Series, numbered: boolean): HarvestPoint {
  return numbered && s.id >= 0
    ? { id: s.id, attributes: s.attributes }
    : { attributes: s.attributes };
}

function describe(info: InstrumentInfo, points: HarvestPoint[]): HarvestMetric {
  const m: HarvestMetric = { name: info.name, kind: info.kind, points };
  if (info.unit !== undefined) m.unit = info.unit;
  if (info.description !== undefined) m.description = info.description;
  if (info.boundaries !== undefined) m.boundaries = info.boundaries.slice();
  return m;
}

function pointKey(p: PointDelta): string {
  return canonicalAttributes(p.attributes).key;
}

/**
 * Merges two consecutive cuts into one, as if they had been a single
 * interval: counters add up, gauges keep the later value, histograms add
 * their counts and buckets. Neither input is modified.
 *
 * @example Merge two counter deltas
 * ```ts
 * import assert from "node:assert/strict";
 * import { mergeCuts } from "./storage.ts";
 * const m = (value: number) => [{ name: "hits", kind: "counter" as const, points: [{ attributes: {}, value }] }];
 * const merged = mergeCuts({ metrics: m(2), dropped: 1 }, { metrics: m(3), dropped: 0 });
 * assert.ok(merged.metrics[0].points[0].value === 5 && merged.dropped === 1);
 * ```
 */
export function mergeCuts(earlier: Cut, later: Cut): Cut {
  const byName = new Map<string, { metric: MetricDelta; points: Map<string, PointDelta> }>();
  const out: MetricDelta[] = [];
  for (const cut of [earlier, later]) {
    for (const m of cut.metrics) {
      let entry = byName.get(m.name);
      if (entry === undefined) {
        const { points: _, ...rest } = m;
        entry = { metric: { ...rest, points: [] }, points: new Map() };
        byName.set(m.name, entry);
        out.push(entry.metric);
      }
      for (const p of m.points) {
        const key = pointKey(p);
        const old = entry.points.get(key);
        entry.points.set(
          key,
          old === undefined
            ? p
            : { attributes: old.attributes, ...aggregationOf(m.kind).merge(old, p) },
        );
      }
    }
  }
  for (const { metric, points } of byName.values()) metric.points = [...points.values()];
  return { metrics: out, dropped: earlier.dropped + later.dropped };
}

/**
 * Splits metrics into groups of at most `maxPoints` points each (a point in
 * the `ids` and `values` columns counts as one), an instrument's points
 * across several groups when it has more. Always at least one group (empty
 * when there is nothing), so an empty harvest still goes out as a heartbeat
 * would.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitMetrics } from "./storage.ts";
 * const points = Array.from({ length: 5 }, (_, i) => ({ attributes: { i }, value: i }));
 * const groups = splitMetrics([{ name: "x", kind: "counter", points }], 2);
 * assert.ok(groups.length === 3 && groups[2][0].points.length === 1);
 * ```
 */
export function splitMetrics(metrics: HarvestMetric[], maxPoints: number): HarvestMetric[][] {
  const groups: HarvestMetric[][] = [[]];
  let room = maxPoints;
  const next = () => {
    if (room > 0) return;
    groups.push([]);
    room = maxPoints;
  };
  for (const m of metrics) {
    const { ids = [], values = [] } = m;
    let at = 0;
    let column = 0;
    do {
      next();
      const part: HarvestMetric = { ...m, points: m.points.slice(at, at + room) };
      delete part.ids;
      delete part.values;
      at += part.points.length;
      room -= part.points.length;
      if (room > 0 && column < ids.length) {
        part.ids = ids.slice(column, column + room);
        part.values = values.slice(column, column + room);
        column += part.ids.length;
        room -= part.ids.length;
      }
      groups.at(-1)!.push(part);
    } while (at < m.points.length || column < ids.length);
  }
  return groups;
}
