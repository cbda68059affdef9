/**
 * The series each worker numbered: a worker defines an id with a series'
 * attributes once, then names the series by its id alone. Ids belong to one
 * reporter (one isolate of one worker process) and are forgotten with the
 * worker.
 *
 * @module
 */

import { isSeriesId } from "../protocol/messages.ts";
import { ID_BYTES, type KnownSeries } from "./aggregator_state.ts";

/**
 * The numbered series of every live worker, by worker key, then isolate, then id.
 *
 * @example Define an id, find it again, forget it with its worker
 * ```ts
 * import assert from "node:assert/strict";
 * import { WorkerSeriesIds } from "./worker_series_ids.ts";
 * const ids = new WorkerSeriesIds();
 * ids.select(7, 0);
 * assert.ok(ids.define(3, { attributes: { route: "/" } }, () => true));
 * assert.deepEqual(ids.get(3)?.attributes, { route: "/" });
 * assert.ok(ids.forget(7) > 0);
 * ids.select(7, 0);
 * assert.equal(ids.get(3), undefined);
 * ```
 */
export class WorkerSeriesIds {
  readonly #known = new Map<number, Map<number, KnownSeries[]>>();
  /** How many ids each worker has defined, its isolates together: what they cost. */
  readonly #count = new Map<number, number>();
  /** The numbered series of the worker and isolate being merged, by id. */
  #ids: KnownSeries[] | undefined;
  #worker = 0;
  #isolate = 0;

  /** Reads and defines the ids of `worker`'s reporter `isolate` from now on. */
  select(worker: number, isolate: number): void {
    this.#worker = worker;
    this.#isolate = isolate;
    this.#ids = this.#known.get(worker)?.get(isolate);
  }

  /** The series the selected reporter numbered `id`, if it defined one. */
  get(id: unknown): KnownSeries | undefined {
    return isSeriesId(id) ? this.#ids?.[id] : undefined;
  }

  /**
   * Remembers `known` as the selected reporter's series `id`. False, and
   * nothing remembered, when `reserve` has no room for one more id.
   */
  define(id: number, known: KnownSeries, reserve: (bytes: number) => boolean): boolean {
    if (this.#ids?.[id] === undefined) {
      if (!reserve(ID_BYTES)) return false;
      this.#count.set(this.#worker, (this.#count.get(this.#worker) ?? 0) + 1);
    }
    if (this.#ids === undefined) {
      let isolates = this.#known.get(this.#worker);
      if (isolates === undefined) this.#known.set(this.#worker, isolates = new Map());
      isolates.set(this.#isolate, this.#ids = []);
    }
    this.#ids[id] = known;
    return true;
  }

  /** Forgets every id of `worker`; returns the bytes they were counted for. */
  forget(worker: number): number {
    this.#known.delete(worker);
    const bytes = (this.#count.get(worker) ?? 0) * ID_BYTES;
    this.#count.delete(worker);
    if (worker === this.#worker) this.#ids = undefined;
    return bytes;
  }
}
