/**
 * What an `Aggregator` can be told: its limits and who hears of
 * conflicting declarations; and why it drops points.
 *
 * @module
 */

import { CARDINALITY_LIMIT } from "../protocol/attributes.ts";

/** Options of an `Aggregator`. */
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
   * Bytes the held state may take, as `Aggregator.bytes` estimates
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

/** Instruments the master keeps when no limit is given: two workers' worth of the reporter's own cap. */
export const DEFAULT_INSTRUMENT_LIMIT = 2000;

/** The attribute added to every gauge point: the worker slot that reported it. */
export const WORKER_ATTRIBUTE = "worker";

/** Series per instrument when no limit is given. */
export const DEFAULT_CARDINALITY_LIMIT = CARDINALITY_LIMIT;
