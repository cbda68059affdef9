/**
 * The series table of one instrument: its time series, found by their
 * attributes, and what each recorded since the last cut.
 *
 * The hot path ({@linkcode SeriesTable.get}) walks a small trie keyed by the
 * attribute names and values in the order the caller wrote them: no string is
 * built, nothing is sorted and nothing is allocated once a series exists. Each
 * trie node remembers the step last taken from it, so a combination recorded
 * again and again costs two comparisons per attribute, not a Map lookup; the
 * first comparison that fails leaves the hot loop for a walk through the maps.
 * Canonicalisation (sorted keys, cleaned values, series that differ only in key
 * order merged into one) happens once, the first time a combination is seen.
 *
 * @module
 */

import type { Attributes } from "../protocol/messages.ts";
import {
  canonicalAttributes,
  CARDINALITY_LIMIT,
  OVERFLOW_ATTRIBUTE,
  setAttribute,
} from "../protocol/attributes.ts";

// Where a histogram series keeps its figures, in one Float64Array.
const COUNT = 0;
const SUM = 1;
const MIN = 2;
const MAX = 3;
const FIRST_BUCKET = 4;
/** The figures of a series that is no histogram: none. */
const NO_FIGURES = new Float64Array(0);

/**
 * One time series of one instrument: what was recorded since the last cut.
 *
 * Every kind uses the same shape so the hot path stays monomorphic:
 * counters and up-down counters sum into `value`, gauges overwrite it, and
 * histograms fill `count`, `sum`, `min`, `max` and `buckets` through
 * {@linkcode Series.observe}.
 *
 * @example Read a series after recording
 * ```ts
 * import assert from "node:assert/strict";
 * import { SeriesTable } from "./series_table.ts";
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
  /** The id harvests give this series once numbered, -1 before (or when ids ran out). */
  id = -1;
  /** The first harvest cut that carried its attributes with its id; 0 before it. */
  definedIn = 0;
  /**
   * Histogram: count, sum, min, max, then one count per bucket (not
   * cumulative). Written into one typed array rather than five properties of
   * an object, a record costs Bun about 1.3 ns less, of 19 (`deno task bench
   * record`), and Deno the same; counts stay exact up to 2^53.
   */
  readonly #figures: Float64Array;

  /**
   * Creates an empty series.
   *
   * @param attributes Canonical attributes of the series.
   * @param nBuckets Number of histogram buckets, 0 for other kinds.
   */
  constructor(attributes: Attributes, nBuckets: number) {
    this.attributes = attributes;
    this.#figures = nBuckets === 0 ? NO_FIGURES : new Float64Array(FIRST_BUCKET + nBuckets);
    this.clear();
  }

  /** Histogram: values recorded. */
  get count(): number {
    return this.#figures[COUNT] ?? 0;
  }

  /** Histogram: sum of the values recorded. */
  get sum(): number {
    return this.#figures[SUM] ?? 0;
  }

  /** Histogram: smallest value recorded (`Infinity` when none). */
  get min(): number {
    return this.#figures[MIN] ?? Infinity;
  }

  /** Histogram: largest value recorded (`-Infinity` when none). */
  get max(): number {
    return this.#figures[MAX] ?? -Infinity;
  }

  /** Per-bucket counts (not cumulative), a copy; empty unless a histogram. */
  get buckets(): number[] {
    return Array.from(this.#figures.subarray(FIRST_BUCKET));
  }

  /**
   * Histogram: adds `value` (finite, `>= 0`) in bucket `bucket`. Returns false,
   * and changes nothing, when the sum would pass the largest double.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Series } from "./series_table.ts";
   * const s = new Series({}, 2);
   * s.observe(0.5, 1);
   * assert.ok(s.count === 1 && s.sum === 0.5 && s.buckets[1] === 1);
   * ```
   */
  observe(value: number, bucket: number): boolean {
    const f = this.#figures;
    const sum = f[SUM] + value;
    if (sum === Infinity) return false;
    f[COUNT]++;
    f[SUM] = sum;
    if (value < f[MIN]) f[MIN] = value;
    if (value > f[MAX]) f[MAX] = value;
    f[FIRST_BUCKET + bucket]++;
    this.dirty = true;
    return true;
  }

  /**
   * Histogram: empties the figures for the next interval.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Series } from "./series_table.ts";
   * const s = new Series({}, 2);
   * s.observe(0.5, 1);
   * s.clear();
   * assert.ok(s.count === 0 && s.min === Infinity && s.buckets[1] === 0);
   * ```
   */
  clear(): void {
    const f = this.#figures;
    if (f.length === 0) return;
    f.fill(0);
    f[MIN] = Infinity;
    f[MAX] = -Infinity;
  }
}

/** A copy of canonical `attributes`, a `__proto__` attribute included. */
function copyOf(attributes: Attributes): Attributes {
  const out: Attributes = {};
  for (const name of Object.keys(attributes)) setAttribute(out, name, attributes[name]);
  return out;
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
 * import { SeriesTable } from "./series_table.ts";
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
  readonly #onInsert: (() => void) | undefined;
  #overflow: Series | undefined;
  #nodes = 0;

  /**
   * Creates an empty table.
   *
   * @param nBuckets Number of histogram buckets, 0 for other kinds.
   * @param limit Most series, the overflow series included (at least 1).
   * @param onInsert Called each time a lookup falls through to making its
   *   series: always the first time an attribute set is seen (and again for
   *   a set the trie does not remember). A recording onto a series the trie
   *   knows never calls it, so it is where a first recording is noticed.
   */
  constructor(
    nBuckets: number,
    limit: number = CARDINALITY_LIMIT,
    onInsert?: () => void,
  ) {
    this.#nBuckets = nBuckets;
    this.#limit = limit;
    this.#onInsert = onInsert;
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
   * import { SeriesTable } from "./series_table.ts";
   * const table = new SeriesTable(0);
   * assert.ok(table.get({ a: 1, b: 2 }) === table.get({ b: 2, a: 1 }));
   * ```
   */
  get(attributes: Readonly<Record<string, unknown>> | undefined): Series {
    // Kept small, every miss in a method of its own, so that engines inline
    // it (and the recording around it) into the caller: the loop only follows
    // the steps last taken.
    let node: _Node = this.#root;
    if (attributes !== undefined) {
      for (const name in attributes) {
        // A name from for-in is a string, so an unset hitName never matches.
        if (name !== node.hitName || attributes[name] !== node.hitValue) {
          return this.#walk(attributes);
        }
        node = node.hitChild!;
      }
    }
    return node.series ?? this.#walk(attributes);
  }

  /** The series for `attributes` through the trie's maps, remembering each step; else inserts it. */
  #walk(attributes: Readonly<Record<string, unknown>> | undefined): Series {
    let node: _Node | undefined = this.#root;
    if (attributes !== undefined) {
      for (const name in attributes) {
        node = node.step(name, attributes[name]);
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
    this.#onInsert?.();
    const { attributes: clean, key } = canonicalAttributes(attributes);
    let series = this.#canonical.get(key);
    if (series === undefined) {
      // As OpenTelemetry counts its cardinality limit, and as the master does:
      // the overflow series is one of the `limit`.
      if (this.#canonical.size < this.#limit - 1) {
        // A set already canonical comes back as the caller's own object,
        // which the caller may change after this call: the series keeps a copy.
        series = new Series(clean === attributes ? copyOf(clean) : clean, this.#nBuckets);
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
