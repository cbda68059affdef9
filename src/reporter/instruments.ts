/**
 * The four instruments the reporter offers: counter, up-down counter, gauge and
 * histogram. Recording never throws: a value that is not a finite number (or a
 * negative one where the kind forbids it) is dropped and counted.
 *
 * @module
 */

import type { Attributes } from "../protocol/messages.ts";
import type { SeriesTable, Storage } from "./storage.ts";

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

/** Adds `value` to (or, for a gauge, sets) the series `attributes` names; drops on failure. */
function apply(
  storage: Storage,
  table: SeriesTable,
  value: number,
  attributes: RecordAttributes | undefined,
  set: boolean,
): void {
  try {
    const s = table.get(attributes);
    const next = set ? value : s.value + value;
    // A sum past the largest double is no count at all: drop this add, keep the sum.
    if (!Number.isFinite(next)) return storage.drop();
    s.value = next;
    s.dirty = true;
  } catch {
    return storage.drop();
  }
  if (storage.idle) storage.wake();
}

/**
 * A monotonic sum: each `add` must be a finite number `>= 0`.
 *
 * @example Count cache hits
 * ```ts
 * import { Storage } from "./storage.ts";
 * import { Counter } from "./instruments.ts";
 * const hits = new Counter(new Storage(), "app.cache.hits");
 * hits.add(1, { cache: "users" });
 * ```
 */
export class Counter extends Instrument {
  /** Creates (or finds) a counter in `storage`. */
  constructor(storage: Storage, name: string, options: InstrumentOptions = {}) {
    super(
      storage,
      name,
      storage.register({ name, kind: "counter", ...checkOptions(name, options) }).table,
    );
  }

  /** Adds `value` (finite, `>= 0`) to the series named by `attributes`. */
  add(value: number, attributes?: RecordAttributes): void {
    if (typeof value !== "number" || !(value >= 0) || value === Infinity) {
      return this.storage.drop();
    }
    apply(this.storage, this.table, value, attributes, false);
  }
}

/**
 * A sum that may go down: each `add` must be a finite number.
 *
 * @example Track open connections
 * ```ts
 * import { Storage } from "./storage.ts";
 * import { UpDownCounter } from "./instruments.ts";
 * const open = new UpDownCounter(new Storage(), "app.connections.open");
 * open.add(1);
 * open.add(-1);
 * ```
 */
export class UpDownCounter extends Instrument {
  /** Creates (or finds) an up-down counter in `storage`. */
  constructor(storage: Storage, name: string, options: InstrumentOptions = {}) {
    super(
      storage,
      name,
      storage.register({ name, kind: "updown", ...checkOptions(name, options) }).table,
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
 * import { Storage } from "./storage.ts";
 * import { Gauge } from "./instruments.ts";
 * const heap = new Gauge(new Storage(), "app.heap.used", { unit: "By" });
 * heap.record(123456);
 * ```
 */
export class Gauge extends Instrument {
  /** Creates (or finds) a gauge in `storage`. */
  constructor(storage: Storage, name: string, options: InstrumentOptions = {}) {
    super(
      storage,
      name,
      storage.register({ name, kind: "gauge", ...checkOptions(name, options) }).table,
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
 * import { Storage } from "./storage.ts";
 * import { Histogram } from "./instruments.ts";
 * const took = new Histogram(new Storage(), "app.job.duration", { unit: "s", boundaries: [0.1, 1, 10] });
 * took.record(0.42, { job: "resize" });
 * ```
 */
export class Histogram extends Instrument {
  readonly #bounds: number[];

  /** Creates (or finds) a histogram in `storage`. */
  constructor(storage: Storage, name: string, options: HistogramOptions = {}) {
    const checked = checkOptions(name, options);
    const bounds = checkBoundaries(
      name,
      options?.boundaries ??
        (options?.unit === "s" ? HTTP_DURATION_BOUNDARIES : DEFAULT_BOUNDARIES),
    );
    super(
      storage,
      name,
      storage.register({ name, kind: "histogram", ...checked, boundaries: bounds }).table,
    );
    this.#bounds = bounds;
  }

  /** Records `value` (finite, `>= 0`) in the series named by `attributes`. */
  record(value: number, attributes?: RecordAttributes): void {
    const storage = this.storage;
    if (typeof value !== "number" || !(value >= 0) || value === Infinity) return storage.drop();
    try {
      const s = this.table.get(attributes);
      if (!Number.isFinite(s.sum + value)) return storage.drop();
      s.count++;
      s.sum += value;
      if (value < s.min) s.min = value;
      if (value > s.max) s.max = value;
      const b = this.#bounds;
      const n = b.length;
      let i = 0;
      if (n <= 8) {
        while (i < n && value > b[i]) i++;
      } else {
        let hi = n;
        while (i < hi) {
          const mid = (i + hi) >>> 1;
          if (value > b[mid]) i = mid + 1;
          else hi = mid;
        }
      }
      s.buckets[i]++;
      s.dirty = true;
    } catch {
      return storage.drop();
    }
    if (storage.idle) storage.wake();
  }
}

function checkOptions(name: string, options: InstrumentOptions | undefined): InstrumentOptions {
  if (typeof name !== "string" || name === "" || name.length > 255) {
    throw new TypeError(
      `Cannot create instrument ${JSON.stringify(name)}: expected a name of 1 to 255 characters`,
    );
  }
  const out: InstrumentOptions = {};
  if (options?.unit !== undefined) {
    if (typeof options.unit !== "string") {
      throw new TypeError(`Cannot create instrument "${name}": unit must be a string`);
    }
    out.unit = options.unit;
  }
  if (options?.description !== undefined) {
    if (typeof options.description !== "string") {
      throw new TypeError(`Cannot create instrument "${name}": description must be a string`);
    }
    out.description = options.description;
  }
  return out;
}

function checkBoundaries(name: string, boundaries: unknown): number[] {
  if (!Array.isArray(boundaries)) {
    throw new TypeError(`Cannot create histogram "${name}": boundaries must be an array`);
  }
  const out: number[] = [];
  for (const b of boundaries) {
    if (typeof b !== "number" || !Number.isFinite(b)) {
      throw new TypeError(`Cannot create histogram "${name}": boundaries must be finite numbers`);
    }
    if (out.length > 0 && b <= out[out.length - 1]) {
      throw new RangeError(
        `Cannot create histogram "${name}": boundaries must be strictly ascending, got ${b} after ${
          out[out.length - 1]
        }`,
      );
    }
    out.push(b);
  }
  return out;
}
