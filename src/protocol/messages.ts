/**
 * The post-fork handshake and harvest protocol spoken over each worker's IPC
 * channel, and the validation of every message that crosses it.
 *
 * Both sides import this file: the master (arbiter) and the reporter that runs
 * inside each worker. It imports only the protocol's own modules, so it stays
 * cheap to load inside the user's process.
 *
 * @module
 */

import { aggregationOf, type PointValue } from "./aggregation.ts";
import { checkDeclaration } from "./declaration.ts";

export { MAX_BOUNDARIES, MAX_DESCRIPTION, MAX_UNIT } from "./declaration.ts";

/** Protocol version carried in every message as `v`. */
export const PROTOCOL_VERSION = 1;

/** Attribute values a data point may carry. */
export type AttributeValue = string | number | boolean;

/** A data point's attributes, keyed by attribute name. */
export type Attributes = Record<string, AttributeValue>;

/** The instrument kinds a harvest can carry. */
export type InstrumentKind = "counter" | "updown" | "gauge" | "histogram";

/**
 * One data point of a harvest. Counters and up-down counters carry the delta
 * since the last acknowledged harvest in `value`; gauges carry the last value;
 * histograms carry `count`, `sum`, `min`, `max` and `buckets` (one count per
 * bucket, `boundaries.length + 1` of them) for the interval.
 */
export interface PointDelta extends PointValue {
  attributes: Attributes;
}

/**
 * One data point as a harvest carries it. A worker may number its series: the
 * first harvests that carry a series give its `id` with its `attributes` (a
 * definition), and once one of them is acked the worker may name the series
 * by its `id` alone. Ids are the worker's own (one numbering per worker
 * process, across all its instruments) and below {@linkcode MAX_SERIES_ID}.
 * A point without an `id` carries its attributes every time.
 */
export interface HarvestPoint extends Omit<PointDelta, "attributes"> {
  attributes?: Attributes;
  id?: number;
}

/** The highest series id a worker may use, plus one: what a master remembers per worker is bounded. */
export const MAX_SERIES_ID = 100_000;

/**
 * All points of one instrument in a harvest. Counters, up-down counters and
 * gauges may give points of series the master knows as two columns, `ids` and
 * `values` (the same length): the compact form a busy worker sends most.
 */
export interface HarvestMetric extends Omit<MetricDelta, "points" | "startMs"> {
  points: HarvestPoint[];
  ids?: number[];
  values?: number[];
}

/** All points of one instrument in a harvest. */
export interface MetricDelta {
  name: string;
  kind: InstrumentKind;
  unit?: string;
  description?: string;
  /** Histogram bucket upper bounds, ascending; histograms only. */
  boundaries?: number[];
  /**
   * When the master's series of this name started over (Unix ms): set only
   * when its declaration changed after the master started. Never sent by a worker.
   */
  startMs?: number;
  points: PointDelta[];
}

/** `worker → master`: first message, sent as soon as the channel is up. */
export interface HelloMessage {
  type: "hello";
  v: number;
  pid: number;
  runtime: string;
}

/** `worker → master`: the worker's server listens. */
export interface ReadyMessage {
  type: "ready";
  v: number;
  addr: string;
}

/** `worker → master`: metric deltas, every harvest interval. */
export interface HarvestMessage {
  type: "harvest";
  v: number;
  seq: number;
  metrics: HarvestMetric[];
  /**
   * Points the worker dropped (bad values, overflow) since its last harvest;
   * once validated, plus those the validator refused.
   */
  dropped?: number;
  /** Set by the validator, never read from the wire: the points of `dropped` it refused. */
  refused?: number;
  /** Requests this worker has completed since it started (cumulative). */
  requests?: number;
}

/** `worker → master`: liveness between harvests (its event loop turns). */
export interface HeartbeatMessage {
  type: "heartbeat";
  v: number;
  /** Requests this worker has completed since it started (cumulative). */
  requests?: number;
}

/** `worker → master`: last message, after the final harvest was acked. */
export interface ByeMessage {
  type: "bye";
  v: number;
  seq: number;
}

/** Any message a worker may send. */
export type WorkerMessage =
  | HelloMessage
  | ReadyMessage
  | HarvestMessage
  | HeartbeatMessage
  | ByeMessage;

/** `master → worker`: answer to `hello`; binds the worker's identity. */
export interface WelcomeMessage {
  type: "welcome";
  v: number;
  worker: number;
  generation: number;
  harvest_interval_ms: number;
  heartbeat_ms: number;
  /**
   * Sent by earlier masters and never read: the master alone exports, with
   * one resource. Accepted, whatever it holds, and ignored.
   *
   * @deprecated
   */
  resource?: unknown;
  /** Force `reusePort` on wrapped servers (more than one worker). */
  reuse_port?: boolean;
}

/** `master → worker`: a harvest was merged; the worker may drop it. */
export interface AckMessage {
  type: "ack";
  v: number;
  seq: number;
}

/** `master → worker`: harvest now, out of schedule. */
export interface FlushMessage {
  type: "flush";
  v: number;
}

/** `master → worker`: drain, send a final harvest, say `bye`, exit. */
export interface ShutdownMessage {
  type: "shutdown";
  v: number;
  graceful_ms: number;
}

/** Any message the master may send. */
export type MasterMessage =
  | WelcomeMessage
  | AckMessage
  | FlushMessage
  | ShutdownMessage;

/** The result of validating one message: the typed message or a reason. */
export type Parsed<T> = { ok: true; message: T } | { ok: false; error: string };

/**
 * Most characters a point's attributes may take in all: their names plus
 * their string values. A point costs the master this much per series kept,
 * and each scrape as much again per line of the series.
 */
export const MAX_ATTRIBUTES_SIZE = 16_384;

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function isCount(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

function isFiniteNumber(x: unknown): x is number {
  return typeof x === "number" && Number.isFinite(x);
}

function fail<T>(error: string): Parsed<T> {
  return { ok: false, error };
}

/** Attributes one point may carry, and how long a key and a string value may be. */
const MAX_ATTRIBUTES = 64;
const MAX_ATTRIBUTE_KEY = 256;
const MAX_ATTRIBUTE_VALUE = 16_384;

function checkAttributes(x: unknown): string | undefined {
  if (!isObject(x)) return "attributes must be an object";
  const entries = Object.entries(x);
  if (entries.length > MAX_ATTRIBUTES) return `more than ${MAX_ATTRIBUTES} attributes`;
  let size = 0;
  for (const [k, v] of entries) {
    size += k.length + (typeof v === "string" ? v.length : 0);
    if (size > MAX_ATTRIBUTES_SIZE) {
      return `attributes longer than ${MAX_ATTRIBUTES_SIZE} characters in all`;
    }
    if (k.length > MAX_ATTRIBUTE_KEY) return `an attribute name longer than ${MAX_ATTRIBUTE_KEY}`;
    if (typeof v === "string" && v.length > MAX_ATTRIBUTE_VALUE) {
      return `attribute "${k}" is longer than ${MAX_ATTRIBUTE_VALUE} characters`;
    }
    const t = typeof v;
    if (t !== "string" && t !== "boolean" && !(t === "number" && isFiniteNumber(v))) {
      return `attribute "${k}" must be a string, a finite number or a boolean`;
    }
  }
  return undefined;
}

/**
 * Whether `x` is a series id a worker may use: an integer from 0 to
 * {@linkcode MAX_SERIES_ID} − 1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isSeriesId } from "./messages.ts";
 * assert.ok(isSeriesId(7) && !isSeriesId(-1) && !isSeriesId(1.5));
 * ```
 */
export function isSeriesId(x: unknown): x is number {
  return typeof x === "number" && Number.isInteger(x) && x >= 0 && x < MAX_SERIES_ID;
}

function checkPoint(p: unknown, kind: InstrumentKind, nBuckets: number): string | undefined {
  if (!isObject(p)) return "point must be an object";
  if (p.id !== undefined && !isSeriesId(p.id)) {
    return `point id must be an integer from 0 to ${MAX_SERIES_ID - 1}`;
  }
  // A numbered point may leave its attributes out: the worker defined them earlier.
  if (p.attributes !== undefined || p.id === undefined) {
    const bad = checkAttributes(p.attributes);
    if (bad) return bad;
  }
  return aggregationOf(kind).validate(p, nBuckets);
}

/**
 * Validates one metric of a harvest.
 *
 * @example Accept a counter delta
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkMetric } from "./messages.ts";
 * const error = checkMetric({ name: "app.hits", kind: "counter", points: [{ attributes: {}, value: 3 }] });
 * assert.ok(error === undefined);
 * ```
 */
export function checkMetric(m: unknown): string | undefined {
  if (!isObject(m)) return "metric must be an object";
  const bad = checkDeclaration(m);
  if (bad?.field === "name") return "metric name must be a non-empty string";
  if (bad !== undefined) return `metric "${m.name}": ${bad.message}`;
  const nBuckets = m.kind === "histogram" ? (m.boundaries as number[]).length + 1 : 0;
  if (!Array.isArray(m.points)) return `metric "${m.name}" points must be an array`;
  for (const p of m.points) {
    const bad = checkPoint(p, m.kind as InstrumentKind, nBuckets);
    if (bad) return `metric "${m.name}": ${bad}`;
  }
  if (m.ids !== undefined || m.values !== undefined) {
    const bad = checkColumns(m.ids, m.values, m.kind as InstrumentKind);
    if (bad) return `metric "${m.name}": ${bad}`;
  }
  return undefined;
}

/** Why the `ids` and `values` columns of a metric are unsound, or undefined. */
function checkColumns(ids: unknown, values: unknown, kind: InstrumentKind): string | undefined {
  if (kind === "histogram") return "a histogram cannot send ids and values";
  if (!Array.isArray(ids) || !Array.isArray(values) || ids.length !== values.length) {
    return "ids and values must be arrays of one length";
  }
  for (let i = 0; i < ids.length; i++) {
    if (!isSeriesId(ids[i])) return `point id must be an integer from 0 to ${MAX_SERIES_ID - 1}`;
    const bad = aggregationOf(kind).validateValue(values[i]);
    if (bad) return bad;
  }
  return undefined;
}

/** The sound points of a metric that failed {@linkcode checkMetric}, and how many were not. */
function salvage(m: unknown): { good?: HarvestMetric; bad: number } {
  const o = isObject(m) ? m : {};
  const points = Array.isArray(o.points) ? o.points : [];
  const ids = Array.isArray(o.ids) ? o.ids : [];
  const values = Array.isArray(o.values) ? o.values : [];
  const total = Math.max(1, points.length + Math.max(ids.length, values.length));
  const bare = { ...o, points: [], ids: undefined, values: undefined };
  if (checkMetric(bare) !== undefined) return { bad: total };
  const good: HarvestMetric = { ...(bare as unknown as HarvestMetric) };
  delete good.ids;
  delete good.values;
  good.points = points.filter((p) => checkMetric({ ...bare, points: [p] }) === undefined);
  const kind = o.kind as InstrumentKind;
  const keep: number[] = [];
  for (let i = 0; i < Math.min(ids.length, values.length); i++) {
    if (checkColumns([ids[i]], [values[i]], kind) === undefined) keep.push(i);
  }
  if (keep.length > 0) {
    good.ids = keep.map((i) => ids[i] as number);
    good.values = keep.map((i) => values[i] as number);
  }
  const n = good.points.length + keep.length;
  return { good: n > 0 ? good : undefined, bad: total - n };
}

/**
 * Validates a message received from a worker.
 *
 * A harvest whose metrics are partly invalid is still accepted: the bad
 * metrics are removed and counted in `dropped`, so one bad instrument never
 * costs the others their data.
 *
 * @example Validate a hello
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseWorkerMessage } from "./messages.ts";
 * const r = parseWorkerMessage({ type: "hello", v: 1, pid: 42, runtime: "deno/2.9.6" });
 * assert.ok(r.ok);
 * ```
 */
export function parseWorkerMessage(raw: unknown): Parsed<WorkerMessage> {
  if (!isObject(raw)) return fail("message is not an object");
  if (raw.v !== PROTOCOL_VERSION) {
    return fail(`unsupported protocol version ${JSON.stringify(raw.v)}`);
  }
  switch (raw.type) {
    case "hello":
      if (!isCount(raw.pid) || raw.pid === 0) return fail("hello.pid must be a positive integer");
      if (typeof raw.runtime !== "string") return fail("hello.runtime must be a string");
      return { ok: true, message: raw as unknown as HelloMessage };
    case "ready":
      if (typeof raw.addr !== "string") return fail("ready.addr must be a string");
      return { ok: true, message: raw as unknown as ReadyMessage };
    case "heartbeat":
      if (raw.requests !== undefined && !isCount(raw.requests)) {
        return fail("heartbeat.requests must be a non-negative integer");
      }
      return { ok: true, message: raw as unknown as HeartbeatMessage };
    case "bye":
      if (!isCount(raw.seq)) return fail("bye.seq must be a non-negative integer");
      return { ok: true, message: raw as unknown as ByeMessage };
    case "harvest": {
      if (!isCount(raw.seq)) return fail("harvest.seq must be a non-negative integer");
      if (!Array.isArray(raw.metrics)) return fail("harvest.metrics must be an array");
      if (raw.dropped !== undefined && !isCount(raw.dropped)) {
        return fail("harvest.dropped must be a non-negative integer");
      }
      if (raw.requests !== undefined && !isCount(raw.requests)) {
        return fail("harvest.requests must be a non-negative integer");
      }
      const metrics: HarvestMetric[] = [];
      let refused = 0;
      for (const m of raw.metrics) {
        if (checkMetric(m) === undefined) {
          metrics.push(m as HarvestMetric);
          continue;
        }
        // A sound instrument keeps its good points: one bad value costs one point.
        const { good, bad } = salvage(m);
        refused += bad;
        if (good !== undefined) metrics.push(good);
      }
      const dropped = ((raw.dropped as number | undefined) ?? 0) + refused;
      return {
        ok: true,
        message: { ...(raw as unknown as HarvestMessage), metrics, dropped, refused },
      };
    }
    default:
      return fail(`unknown message type ${JSON.stringify(raw.type)}`);
  }
}

/**
 * Validates a message received from the master.
 *
 * @example Validate an ack
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMasterMessage } from "./messages.ts";
 * assert.ok(parseMasterMessage({ type: "ack", v: 1, seq: 3 }).ok);
 * ```
 */
export function parseMasterMessage(raw: unknown): Parsed<MasterMessage> {
  if (!isObject(raw)) return fail("message is not an object");
  if (raw.v !== PROTOCOL_VERSION) {
    return fail(`unsupported protocol version ${JSON.stringify(raw.v)}`);
  }
  switch (raw.type) {
    case "welcome":
      if (!isCount(raw.worker) || raw.worker === 0) {
        return fail("welcome.worker must be a positive integer");
      }
      if (!isCount(raw.generation)) {
        return fail("welcome.generation must be a non-negative integer");
      }
      if (!isCount(raw.harvest_interval_ms) || raw.harvest_interval_ms === 0) {
        return fail("welcome.harvest_interval_ms must be a positive integer");
      }
      if (!isCount(raw.heartbeat_ms)) {
        return fail("welcome.heartbeat_ms must be a non-negative integer");
      }
      return { ok: true, message: raw as unknown as WelcomeMessage };
    case "ack":
      if (!isCount(raw.seq)) return fail("ack.seq must be a non-negative integer");
      return { ok: true, message: raw as unknown as AckMessage };
    case "flush":
      return { ok: true, message: raw as unknown as FlushMessage };
    case "shutdown":
      if (!isCount(raw.graceful_ms)) {
        return fail("shutdown.graceful_ms must be a non-negative integer");
      }
      return { ok: true, message: raw as unknown as ShutdownMessage };
    default:
      return fail(`unknown message type ${JSON.stringify(raw.type)}`);
  }
}
