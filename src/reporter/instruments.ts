/**
 * The four instruments the reporter offers: counter, up-down counter, gauge and
 * histogram. Recording never throws: a value that is not a finite number (or a
 * negative one where the kind forbids it) is dropped and counted.
 *
 * @module
 */

import type { Attributes, InstrumentKind } from "../protocol/messages.ts";
import { checkDeclaration } from "../protocol/declaration.ts";
import type { Series, SeriesTable } from "./series_table.ts";
import type { Storage } from "./storage.ts";

/** Attributes a caller may pass when recording; cleaned once per new series. */
export type RecordAttributes = Readonly<Record<string, unknown>> | Attributes;

/** Options shared by every instrument. */
export interface InstrumentOptions {
  /** Unit of measure, UCUM style (`"s"`, `"By"`, `"{request}"`). */
  unit?: string;
  /** One sentence on what the instrument measures. */
  description?: string;
}

/** Options of a histogram. */
export interface HistogramOptions extends InstrumentOptions {
  /**
   * Bucket upper bounds (inclusive), finite and strictly ascending. When not
   * given: {@linkcode DURATION_BOUNDARIES} for unit `s`, else the OpenTelemetry
   * API's default, {@linkcode DEFAULT_BOUNDARIES}.
   */
  boundaries?: readonly number[];
}

/** The OpenTelemetry SDK's default explicit bucket boundaries. */
export const DEFAULT_BOUNDARIES: readonly number[] = Object.freeze([
  0,
  5,
  10,
  25,
  50,
  75,
  100,
  250,
  500,
  750,
  1000,
  2500,
  5000,
  7500,
  10000,
]);

/**
 * Boundaries of `http.server.request.duration`, in seconds (OpenTelemetry
 * semantic conventions).
 */
export const HTTP_DURATION_BOUNDARIES: readonly number[] = Object.freeze([
  0.005,
  0.01,
  0.025,
  0.05,
  0.075,
  0.1,
  0.25,
  0.5,
  0.75,
  1,
  2.5,
  5,
  7.5,
  10,
]);

/** What every instrument holds: its name, the storage and its series table. */
abstract class Instrument {
  /** Instrument name. */
  readonly name: string;
  protected readonly storage: Storage;
  protected readonly table: SeriesTable;

  constructor(storage: Storage, name: string, table: SeriesTable) {
    this.name = name;
    this.storage = storage;
    this.table = table;
  }
}

/** Whether a counter or histogram takes `value`: a finite number, `>= 0` (NaN is not). */
function isAmount(value: unknown): value is number {
  return typeof value === "number" && value >= 0 && value < Infinity;
}

/**
 * The series `attributes` names, or undefined when finding it threw (a getter
 * or a proxy among the attributes, or no room for another instrument). The
 * try/catch lives here, in a function of its own, so the recording methods
 * stay small enough for engines to inline into the code that records.
 */
function find(table: SeriesTable, attributes: RecordAttributes | undefined): Series | undefined {
  try {
    return table.get(attributes);
  } catch {
    return undefined;
  }
}

/**
 * Puts a valid `value` (finite, `>= 0`) in histogram series `s`; drops it when
 * there is no series or the sum would pass the largest double (observe() then
 * changes nothing).
 */
function observe(
  storage: Storage,
  s: Series | undefined,
  buckets: BucketFinder,
  value: number,
): void {
  if (s === undefined || !s.observe(value, buckets.index(value))) storage.drop();
}

/** Adds `value` to (or, for a gauge, sets) the series `attributes` names; drops on failure. */
function apply(
  storage: Storage,
  table: SeriesTable,
  value: number,
  attributes: RecordAttributes | undefined,
  set: boolean,
): void {
  const s = find(table, attributes);
  if (s !== undefined) {
    const next = set ? value : s.value + value;
    // Finite (`x - x` is NaN for ±Infinity): a sum past the largest double is
    // no count at all, so that add is dropped and the sum kept.
    if (next - next === 0) {
      s.value = next;
      s.dirty = true;
      return;
    }
  }
  storage.drop();
}

// The bits of a double: a value's bucket is looked up from its exponent and
// the top of its mantissa (see BucketFinder).
const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
/** The same words signed: a non-negative double's high word is below 2^31. */
const I32 = new Int32Array(F64.buffer);
/** Index in U32 and I32 of a double's high word (sign, exponent, top of the mantissa). */
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;
/** Most cells a finder's table has (unless its boundaries span more than 2^500 or so). */
const MAX_CELLS = 512;

function highWord(x: number): number {
  F64[0] = x;
  return U32[HI];
}

function fromWords(high: number, low: number): number {
  U32[HI] = high;
  U32[1 - HI] = low;
  return F64[0];
}

/**
 * Finds the bucket of a histogram value (finite, `>= 0`) in a few steps,
 * whatever the boundaries and however the values spread over them: no search,
 * so no branch the processor mispredicts on every other value.
 *
 * Non-negative doubles sort like the unsigned integers of their bits, so the
 * high 32 bits shifted right cut the number line into cells: a few per binary
 * order of magnitude, over the span of the boundaries (the first and last cell
 * reach down to 0 and up to the largest double). A table gives each cell's
 * bucket, or, for the few cells that hold a boundary, the first bucket to
 * compare from.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BucketFinder } from "./instruments.ts";
 * const f = new BucketFinder([0, 5, 10]);
 * assert.ok(f.index(0) === 0 && f.index(5) === 1 && f.index(5.5) === 2 && f.index(11) === 3);
 * ```
 */
export class BucketFinder {
  readonly #bounds: readonly number[];
  /** Right shift of a value's high word that gives its cell (before `base`). */
  readonly #shift: number;
  /** The first cell's number. */
  readonly #base: number;
  /** The last cell's index in `table`. */
  readonly #last: number;
  /**
   * Per cell: `bucket * 4 + kind`. Kind 0: every value of the cell is in
   * `bucket`. Kind 1: in `bucket`, or the next one past `bounds[bucket]`.
   * Kind 2: `bucket` or later (a search from there).
   */
  readonly #table: Int32Array;

  /** Builds the table for `bounds`: finite and strictly ascending. */
  constructor(bounds: readonly number[]) {
    this.#bounds = bounds.slice();
    const positive = bounds.filter((b) => b > 0);
    const low = positive.length === 0 ? 0 : highWord(positive[0]);
    const high = positive.length === 0 ? 0 : highWord(positive[positive.length - 1]);
    // 2^(20 - shift) cells per binary order of magnitude: the finest cut that
    // fits in MAX_CELLS. At shift 20 (one cell per order) a cell's top is
    // always a finite double.
    let shift = 12;
    while (shift < 20 && (high >>> shift) - (low >>> shift) + 3 > MAX_CELLS) shift++;
    // Cell 0 ends below the smallest positive boundary and reaches down to 0;
    // the last cell starts above the largest boundary.
    const base = Math.max(0, (low >>> shift) - 1);
    const last = (high >>> shift) - base + 1;
    const table = new Int32Array(last + 1);
    for (let c = 0; c < last; c++) {
      const bottom = c === 0 ? 0 : fromWords(((c + base) << shift) >>> 0, 0);
      const top = fromWords(((((c + base + 1) << shift) >>> 0) - 1) >>> 0, 0xffffffff);
      const first = countBelow(bounds, bottom);
      const span = countBelow(bounds, top) - first;
      table[c] = first * 4 + (span === 0 ? 0 : span === 1 ? 1 : 2);
    }
    table[last] = bounds.length * 4;
    this.#shift = shift;
    this.#base = base;
    this.#last = last;
    this.#table = table;
  }

  /** The bucket of `value` (finite, `>= 0`): the number of boundaries below it. */
  index(value: number): number {
    F64[0] = value + 0; // -0 as +0: its sign bit would put it in the last cell
    let c = (I32[HI] >> this.#shift) - this.#base;
    if (c < 0) c = 0;
    else if (c > this.#last) c = this.#last;
    const e = this.#table[c];
    return (e & 3) === 0 ? e >>> 2 : this.#near(e, value);
  }

  #near(e: number, value: number): number {
    const b = this.#bounds;
    let i = e >>> 2;
    if ((e & 3) === 1) return value > b[i] ? i + 1 : i;
    let hi = b.length;
    while (i < hi) {
      const mid = (i + hi) >>> 1;
      if (value > b[mid]) i = mid + 1;
      else hi = mid;
    }
    return i;
  }
}

/** How many of the ascending `bounds` are below `x`: the bucket of `x`. */
function countBelow(bounds: readonly number[], x: number): number {
  let i = 0;
  while (i < bounds.length && x > bounds[i]) i++;
  return i;
}

/** Finders already built, by boundaries: most histograms share a few sets. */
const finders = new Map<string, BucketFinder>();

function finderFor(bounds: readonly number[]): BucketFinder {
  const key = bounds.join();
  let f = finders.get(key);
  if (f === undefined) {
    f = new BucketFinder(bounds);
    if (finders.size < 64) finders.set(key, f);
  }
  return f;
}

/**
 * A monotonic sum: each `add` must be a finite number `>= 0`.
 *
 * @example Count cache hits
 * ```ts
 * import assert from "node:assert/strict";
 * import { Storage } from "./storage.ts";
 * import { Counter } from "./instruments.ts";
 * const storage = new Storage();
 * const hits = new Counter(storage, "app.cache.hits");
 * hits.add(1, { cache: "users" });
 * hits.add(-1); // dropped and counted: a counter never goes down
 * assert.deepEqual(storage.cut().metrics[0].points, [{ attributes: { cache: "users" }, value: 1 }]);
 * ```
 */
export class Counter extends Instrument {
  /** Creates (or finds) a counter in `storage`. */
  constructor(storage: Storage, name: string, options: InstrumentOptions = {}) {
    super(
      storage,
      name,
      storage.register({ name, kind: "counter", ...checkOptions(name, "counter", options) }).table,
    );
  }

  /** Adds `value` (finite, `>= 0`) to the series named by `attributes`. */
  add(value: number, attributes?: RecordAttributes): void {
    if (isAmount(value)) {
      return apply(this.storage, this.table, value, attributes, false);
    }
    this.storage.drop();
  }
}

/**
 * A sum that may go down: each `add` must be a finite number.
 *
 * @example Track open connections
 * ```ts
 * import assert from "node:assert/strict";
 * import { Storage } from "./storage.ts";
 * import { UpDownCounter } from "./instruments.ts";
 * const storage = new Storage();
 * const open = new UpDownCounter(storage, "app.connections.open");
 * open.add(2);
 * open.add(-1);
 * assert.equal(storage.cut().metrics[0].points[0].value, 1);
 * ```
 */
export class UpDownCounter extends Instrument {
  /** Creates (or finds) an up-down counter in `storage`. */
  constructor(storage: Storage, name: string, options: InstrumentOptions = {}) {
    super(
      storage,
      name,
      storage.register({ name, kind: "updown", ...checkOptions(name, "updown", options) }).table,
    );
  }

  /** Adds `value` (finite, any sign) to the series named by `attributes`. */
  add(value: number, attributes?: RecordAttributes): void {
    if (typeof value !== "number" || value - value !== 0) return this.storage.drop();
    apply(this.storage, this.table, value, attributes, false);
  }
}

/**
 * A value sampled now and then; each harvest carries the last value of every
 * series recorded since the previous harvest.
 *
 * @example Record heap use
 * ```ts
 * import assert from "node:assert/strict";
 * import { Storage } from "./storage.ts";
 * import { Gauge } from "./instruments.ts";
 * const storage = new Storage();
 * const heap = new Gauge(storage, "app.heap.used", { unit: "By" });
 * heap.record(100);
 * heap.record(123456);
 * assert.equal(storage.cut().metrics[0].points[0].value, 123456);
 * ```
 */
export class Gauge extends Instrument {
  /** Creates (or finds) a gauge in `storage`. */
  constructor(storage: Storage, name: string, options: InstrumentOptions = {}) {
    super(
      storage,
      name,
      storage.register({ name, kind: "gauge", ...checkOptions(name, "gauge", options) }).table,
    );
  }

  /** Sets the series named by `attributes` to `value` (finite). */
  record(value: number, attributes?: RecordAttributes): void {
    if (typeof value !== "number" || value - value !== 0) return this.storage.drop();
    apply(this.storage, this.table, value, attributes, true);
  }
}

/**
 * A distribution: count, sum, min, max and per-bucket counts. Values must be
 * finite and `>= 0`; a value equal to a boundary falls in that boundary's
 * bucket.
 *
 * @example Time a job
 * ```ts
 * import assert from "node:assert/strict";
 * import { Storage } from "./storage.ts";
 * import { Histogram } from "./instruments.ts";
 * const storage = new Storage();
 * const took = new Histogram(storage, "app.job.duration", { unit: "s", boundaries: [0.1, 1, 10] });
 * took.record(0.42, { job: "resize" });
 * assert.deepEqual(storage.cut().metrics[0].points[0].buckets, [0, 1, 0, 0]);
 * ```
 */
export class Histogram extends Instrument {
  readonly #buckets: BucketFinder;

  /** Creates (or finds) a histogram in `storage`. */
  constructor(storage: Storage, name: string, options: HistogramOptions = {}) {
    const boundaries = options?.boundaries ??
      (options?.unit === "s" ? HTTP_DURATION_BOUNDARIES : DEFAULT_BOUNDARIES);
    const checked = checkOptions(name, "histogram", { ...options, boundaries });
    const bounds = [...boundaries];
    super(
      storage,
      name,
      storage.register({ name, kind: "histogram", ...checked, boundaries: bounds }).table,
    );
    this.#buckets = finderFor(bounds);
  }

  /** Records `value` (finite, `>= 0`) in the series named by `attributes`. */
  record(value: number, attributes?: RecordAttributes): void {
    // Bad values are dropped before the lookup, so they never create a series.
    if (isAmount(value)) {
      return observe(this.storage, find(this.table, attributes), this.#buckets, value);
    }
    this.storage.drop();
  }

  /**
   * This histogram with `attributes` fixed, which must not change afterwards:
   * see {@linkcode BoundHistogram}.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Storage } from "./storage.ts";
   * import { Histogram } from "./instruments.ts";
   * const storage = new Storage();
   * const took = new Histogram(storage, "app.job.duration", { unit: "s" });
   * took.bind({ job: "resize" }).record(0.42);
   * assert.equal(storage.cut().metrics[0].points[0].count, 1);
   * ```
   */
  bind(attributes: Attributes): BoundHistogram {
    return new BoundHistogram(this.storage, this.table, this.#buckets, attributes);
  }
}

/**
 * A histogram with its attributes fixed ({@linkcode Histogram.bind}): the series is found on the first
 * recording and kept (series are never removed), so each later recording
 * skips the lookup. For a caller that builds a few attribute sets once and
 * reuses them, such as the HTTP timing; recording is otherwise the same as
 * {@linkcode Histogram.record}, drops and the overflow series included.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Storage } from "./storage.ts";
 * import { Histogram } from "./instruments.ts";
 * const storage = new Storage();
 * const took = new Histogram(storage, "app.job.duration", { unit: "s" });
 * const resize = took.bind({ job: "resize" });
 * resize.record(0.42);
 * resize.record(NaN); // dropped and counted
 * const cut = storage.cut();
 * assert.deepEqual([cut.metrics[0].points[0].sum, cut.dropped], [0.42, 1]);
 * ```
 */
export class BoundHistogram {
  /** The attributes every recording carries. */
  readonly attributes: Attributes;
  readonly #storage: Storage;
  readonly #table: SeriesTable;
  readonly #buckets: BucketFinder;
  #series: Series | undefined = undefined;

  /** Made by {@linkcode Histogram.bind}, from the histogram's parts. */
  constructor(storage: Storage, table: SeriesTable, buckets: BucketFinder, attributes: Attributes) {
    this.attributes = attributes;
    this.#storage = storage;
    this.#table = table;
    this.#buckets = buckets;
  }

  /** Records `value` (finite, `>= 0`) in the bound series. */
  record(value: number): void {
    if (isAmount(value)) {
      const s = this.#series ??= find(this.#table, this.attributes);
      return observe(this.#storage, s, this.#buckets, value);
    }
    this.#storage.drop();
  }
}

/**
 * The declaration's options, checked as the master checks them: a
 * `TypeError` for a wrong type, a `RangeError` for a value out of range.
 */
function checkOptions(
  name: string,
  kind: InstrumentKind,
  options: HistogramOptions | undefined,
): InstrumentOptions {
  const bad = checkDeclaration({
    name,
    kind,
    unit: options?.unit,
    description: options?.description,
    boundaries: options?.boundaries,
  });
  if (bad !== undefined) {
    const Error = bad.error === "range" ? RangeError : TypeError;
    if (bad.field === "name") {
      throw new Error(`Cannot create instrument ${JSON.stringify(name)}: ${bad.message}`);
    }
    const subject = bad.field === "boundaries" ? "histogram" : "instrument";
    throw new Error(`Cannot create ${subject} "${name}": ${bad.message}`);
  }
  const out: InstrumentOptions = {};
  if (options?.unit !== undefined) out.unit = options.unit;
  if (options?.description !== undefined) out.description = options.description;
  return out;
}
