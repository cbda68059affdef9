/**
 * In-process metric storage of the reporter: its instruments (one series
 * table each, see `series_table.ts`), the cut that turns what they recorded
 * into harvest points, and the merge of cuts not delivered yet.
 *
 * @module
 */

import {
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
import { type Series, SeriesTable } from "./series_table.ts";

export { CARDINALITY_LIMIT, OVERFLOW_ATTRIBUTE };

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
  /**
   * True until the first recording. A series is only made by a recording, so
   * the first one wakes the storage as it makes its series (or drops its
   * point), and recording onto a known series checks nothing. See
   * {@linkcode Storage.wake}.
   */
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
    const table = new SeriesTable(nBuckets, CARDINALITY_LIMIT, () => this.wake());
    const state: InstrumentState = { ...info, table };
    this.#instruments.set(info.name, state);
    return state;
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
          s.clear();
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
