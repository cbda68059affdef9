/**
 * Runtime health measured inside the worker, sent with each harvest: heap
 * used and heap limit, event-loop delay over the harvest interval, and the
 * number of requests in flight.
 *
 * Neither runtime gives all of it: Deno's `monitorEventLoopDelay` does not
 * measure and neither runtime emits `gc` performance entries, so the delay
 * comes from a probe of our own (the lateness of the reporter's one timer,
 * which turns faster while requests are in flight, goes into a small fixed
 * histogram) and GC pauses are not reported. The figures are read only when
 * a harvest is cut, so an idle worker pays for the timer's wakeups and
 * nothing else.
 *
 * @module
 */

import { Gauge, UpDownCounter } from "./instruments.ts";
import type { Storage } from "./storage.ts";
import { heapUsedReader } from "../runtime/heap.ts";

/** Name of the in-flight request count (OpenTelemetry HTTP semantic conventions). */
export const HTTP_ACTIVE_REQUESTS = "http.server.active_requests";

/**
 * How often the event-loop probe turns while the worker is busy, in ms: a
 * delay is known to within this much. Node's `monitorEventLoopDelay` turns
 * every 10 ms, but each turn costs about 0.1 ms of CPU, so 100 turns a second
 * cost a worker serving requests two to three points of its CPU per request
 * (`deno task bench health`); 20 turns still give a p99 over 100 delays in a
 * 5 s harvest interval.
 */
export const LOOP_PROBE_MS = 50;

/** How often the event-loop probe turns while the worker is quiet, in ms. */
export const LOOP_PROBE_IDLE_MS = 200;

/** How long (ms) the probe turns fast with nothing in flight and no lateness before it slows down. */
const QUIET_MS = 250;

/** Buckets per doubling of the delay histogram: each bucket spans at most 19%. */
const STEPS = 4;
/** Histogram buckets: from 1 µs up to 2^40 µs (twelve days), and one for anything beyond. */
const BUCKETS = 40 * STEPS + 2;

/**
 * The distribution of event-loop delays over one interval, in milliseconds:
 * exact count, minimum, maximum, mean and standard deviation, and
 * percentiles from fixed log-scaled buckets (within 19% of the true value,
 * and never outside the minimum and maximum). Its memory is fixed: a
 * recording allocates nothing.
 *
 * @example The p99 of a hundred delays
 * ```ts
 * import assert from "node:assert/strict";
 * import { DelayHistogram } from "./runtime_metrics.ts";
 * const h = new DelayHistogram();
 * for (let i = 1; i <= 100; i++) h.record(i);
 * assert.equal(h.count, 100);
 * assert.equal(h.max, 100);
 * const p99 = h.percentile(99);
 * assert.ok(p99 >= 99 / 1.19 && p99 <= 100, `p99 ${p99}`);
 * ```
 */
export class DelayHistogram {
  /** Delays recorded since the last reset. */
  count = 0;
  /** Smallest delay recorded (ms); 0 when none. */
  min = 0;
  /** Largest delay recorded (ms); 0 when none. */
  max = 0;
  #sum = 0;
  #squares = 0;
  readonly #buckets = new Uint32Array(BUCKETS);

  /** Records one delay in ms; a negative or non-finite one counts as 0. */
  record(ms: number): void {
    const v = ms > 0 && ms < Infinity ? ms : 0;
    if (this.count === 0 || v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    this.count++;
    this.#sum += v;
    this.#squares += v * v;
    this.#buckets[bucketOf(v)]++;
  }

  /** Mean delay (ms); 0 when none. */
  get mean(): number {
    return this.count === 0 ? 0 : this.#sum / this.count;
  }

  /** Standard deviation of the delays (ms); 0 when fewer than two. */
  get stddev(): number {
    if (this.count < 2) return 0;
    const mean = this.mean;
    const variance = this.#squares / this.count - mean * mean;
    return variance > 0 ? Math.sqrt(variance) : 0;
  }

  /**
   * The delay (ms) at or below which `p` percent of the recorded delays fall:
   * the upper bound of the bucket that holds it, kept within the minimum and
   * the maximum. 0 when nothing was recorded.
   */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((Math.min(Math.max(p, 0), 100) / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#buckets[i];
      if (seen >= rank) return Math.min(Math.max(bucketTop(i), this.min), this.max);
    }
    return this.max;
  }

  /** Forgets every delay: the next interval starts empty. */
  reset(): void {
    this.count = 0;
    this.min = 0;
    this.max = 0;
    this.#sum = 0;
    this.#squares = 0;
    this.#buckets.fill(0);
  }
}

/** Bucket of a delay in ms: 0 up to 1 µs, then STEPS buckets per doubling. */
function bucketOf(ms: number): number {
  const us = ms * 1000;
  if (us <= 1) return 0;
  const i = Math.ceil(Math.log2(us) * STEPS);
  return i < BUCKETS - 1 ? i : BUCKETS - 1;
}

/** Upper bound (ms) of bucket `i`. */
function bucketTop(i: number): number {
  return i >= BUCKETS - 1 ? Infinity : 2 ** (i / STEPS) / 1000;
}

/**
 * The event-loop probe: a timer whose lateness at each turn is a delay the
 * loop imposed on everything due with it. Lateness is measured from the
 * previous turn, so a runtime that schedules the next turn from the previous
 * due time or from the previous turn gives the same figures.
 *
 * Every wakeup of an idle process costs (about 0.1 ms of CPU here), so the
 * probe turns every {@linkcode LOOP_PROBE_IDLE_MS} while the worker is quiet
 * and every {@linkcode LOOP_PROBE_MS} while it has requests in flight or its
 * loop runs late, when the process is awake anyway. A block of `B` ms shows
 * as a delay between `B` minus the period and `B`.
 *
 * @example A loop blocked for 100 ms delays the next turn by about that
 * ```ts
 * import assert from "node:assert/strict";
 * import { DelayHistogram, LoopProbe } from "./runtime_metrics.ts";
 * const h = new DelayHistogram();
 * let now = 0;
 * const probe = new LoopProbe(h, () => now, 50, 200);
 * probe.start();
 * now = 200;
 * assert.equal(probe.turn(true), true); // requests in flight: from now on every 50 ms
 * now = 350, probe.turn(true); // 100 ms late
 * assert.deepEqual([h.count, h.max, probe.periodMs], [2, 100, 50]);
 * ```
 */
export class LoopProbe {
  readonly #histogram: DelayHistogram;
  readonly #now: () => number;
  readonly #fastMs: number;
  readonly #idleMs: number;
  #periodMs: number;
  #last = 0;
  #quiet = 0;

  /**
   * A probe recording into `histogram` on the clock `now` (ms), turning every
   * `fastMs` while busy and every `idleMs` while quiet.
   */
  constructor(histogram: DelayHistogram, now: () => number, fastMs: number, idleMs: number) {
    this.#histogram = histogram;
    this.#now = now;
    this.#fastMs = fastMs;
    this.#idleMs = idleMs;
    this.#periodMs = idleMs;
  }

  /** The period the timer must run at now. */
  get periodMs(): number {
    return this.#periodMs;
  }

  /** The timer was armed now, at the idle period. */
  start(): void {
    this.#last = this.#now();
    this.#periodMs = this.#idleMs;
    this.#quiet = 0;
  }

  /**
   * One turn of the timer: records how late it came. `busy` says whether
   * requests are in flight. Returns true when the timer must be re-armed at
   * the new {@linkcode LoopProbe.periodMs}: fast at once when busy or late,
   * idle again after a quarter of a second of quiet fast turns.
   */
  turn(busy: boolean): boolean {
    const now = this.#now();
    const late = now - this.#last - this.#periodMs;
    this.#histogram.record(late);
    this.#last = now;
    if (busy || late > this.#fastMs) {
      this.#quiet = 0;
      if (this.#periodMs === this.#fastMs) return false;
      this.#periodMs = this.#fastMs;
      return true;
    }
    if (this.#periodMs === this.#idleMs || ++this.#quiet * this.#fastMs < QUIET_MS) return false;
    this.#periodMs = this.#idleMs;
    return true;
  }
}

/** Heap figures in bytes. */
export interface HeapFigures {
  /** Bytes the heap's live and not yet collected objects take. */
  used: number;
  /** Bytes the heap may grow to (0 when the runtime does not say). */
  limit: number;
}

/**
 * Reads the heap used, the cheapest way the runtime allows and without
 * loading a module (undefined where it cannot). No limit on either runtime:
 * JavaScriptCore (Bun) has none (the `heap_size_limit` Bun's `node:v8`
 * reports grows with the heap and takes milliseconds to read), and on V8
 * (Deno) only `node:v8` tells it, whose loading alone costs a worker more
 * private memory than all the runtime metrics together may.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { heapReader } from "./runtime_metrics.ts";
 * const read = heapReader();
 * const heap = read!();
 * assert.ok(heap.used > 0 && heap.limit === 0);
 * ```
 */
export function heapReader(): (() => HeapFigures) | undefined {
  const used = heapUsedReader();
  return used === undefined ? undefined : () => ({ used: used(), limit: 0 });
}

/** What the sampler needs of the reporter's process: its clock. */
export interface SamplerHost {
  /** Monotonic milliseconds. */
  now(): number;
}

/**
 * A gauge and the value it sent last. The master keeps a worker's gauge
 * until the worker exits, so a value that did not change is not sent again:
 * every series in a harvest costs the worker memory (on Bun, some 100 KiB of
 * garbage at rest for each series sent every 5 s).
 */
interface Figure {
  gauge: Gauge;
  last: number;
}

function setFigure(f: Figure | undefined, value: number): void {
  if (f === undefined || f.last === value) return;
  f.last = value;
  f.gauge.record(value);
}

/**
 * The runtime metrics of one worker. {@linkcode RuntimeSampler.start} starts
 * the loop probe (at `welcome`, never at import); it arms no timer of its
 * own: the reporter's one timer calls {@linkcode RuntimeSampler.turn} and
 * turns at {@linkcode RuntimeSampler.paceMs}. Each harvest calls
 * {@linkcode RuntimeSampler.sample} just before it cuts, which records the
 * heap, the delay over the interval (then starts the next one) and the
 * change in requests in flight. Gauges need no label of ours: the master
 * keeps a gauge per worker slot (`worker`). The up-down counter is summed
 * over workers by the master, so it carries the slot itself.
 *
 * @example Sample once with fake time
 * ```ts
 * import assert from "node:assert/strict";
 * import { Storage } from "./storage.ts";
 * import { RuntimeSampler } from "./runtime_metrics.ts";
 * const storage = new Storage();
 * let now = 0;
 * let inFlight = 2;
 * const sampler = new RuntimeSampler(storage, { now: () => now }, () => inFlight);
 * sampler.start(3, () => ({ used: 1000, limit: 5000 }));
 * now = 320;
 * sampler.turn(); // 120 ms late
 * sampler.sample();
 * const metrics = storage.cut().metrics;
 * const value = (name: string) => metrics.find((m) => m.name === name)?.points[0].value;
 * assert.equal(value("v8js.memory.heap.used"), 1000);
 * assert.equal(value("nodejs.eventloop.delay.max"), 0.12);
 * assert.equal(value("http.server.active_requests"), 2);
 * assert.deepEqual(metrics.find((m) => m.name === "http.server.active_requests")?.points[0].attributes, { worker: "3" });
 * sampler.stop();
 * ```
 */
export class RuntimeSampler {
  /** The delays of the current interval. */
  readonly delays: DelayHistogram = new DelayHistogram();
  /** The probe feeding {@linkcode RuntimeSampler.delays}. */
  readonly probe: LoopProbe;
  readonly #storage: Storage;
  readonly #active: () => number;
  #started = false;
  #heap: (() => HeapFigures) | undefined;
  #heapUsed: Figure | undefined;
  #heapLimit: Figure | undefined;
  #delayMax: Figure | undefined;
  #delayP99: Figure | undefined;
  #requests: UpDownCounter | undefined;
  #slot: Readonly<Record<string, string>> = {};
  /** Requests in flight as last reported; -1 before the first report. */
  #reported = -1;

  /** A sampler recording into `storage`; `active` counts the requests in flight. */
  constructor(storage: Storage, host: SamplerHost, active: () => number) {
    this.#storage = storage;
    this.#active = active;
    this.probe = new LoopProbe(this.delays, () => host.now(), LOOP_PROBE_MS, LOOP_PROBE_IDLE_MS);
  }

  /** Whether the probe runs. */
  get active(): boolean {
    return this.#started;
  }

  /** The period (ms) the timer driving {@linkcode RuntimeSampler.turn} must turn at; 0 when stopped. */
  get paceMs(): number {
    return this.#started ? this.probe.periodMs : 0;
  }

  /**
   * Registers the instruments and starts the probe, for worker slot `slot`.
   * `heap` reads the heap; by default the runtime's own figures, once its
   * modules have loaded (until then no heap gauge is sent). Idempotent.
   */
  start(slot: number, heap?: () => HeapFigures): void {
    if (this.#started) return;
    this.#started = true;
    this.#slot = { worker: String(slot) };
    this.#register();
    this.#heap = heap ?? heapReader();
    this.delays.reset();
    this.probe.start();
  }

  /**
   * One turn of the timer: records its lateness. Returns true when
   * {@linkcode RuntimeSampler.paceMs} changed. Does nothing when stopped;
   * never throws.
   */
  turn(): boolean {
    if (!this.#started) return false;
    try {
      return this.probe.turn(this.#active() > 0);
    } catch {
      return false;
    }
  }

  /** Stops the probe (at shutdown); a last {@linkcode RuntimeSampler.sample} still works. */
  stop(): void {
    this.#started = false;
  }

  #register(): void {
    const s = this.#storage;
    // A name the app already took for another kind keeps the app's instrument;
    // that one figure is then not sent.
    const figure = (name: string, unit: string, description: string): Figure | undefined => {
      try {
        return { gauge: new Gauge(s, name, { unit, description }), last: NaN };
      } catch {
        return undefined;
      }
    };
    this.#heapUsed = figure("v8js.memory.heap.used", "By", "Bytes of the JavaScript heap in use");
    this.#heapLimit = figure(
      "v8js.memory.heap.limit",
      "By",
      "Bytes the JavaScript heap may grow to",
    );
    // Of OpenTelemetry's nodejs.eventloop.delay.* (min, max, mean, stddev,
    // p50, p90, p99), the two that tell a blocked loop: each series costs.
    this.#delayMax = figure(
      "nodejs.eventloop.delay.max",
      "s",
      "Largest event-loop delay over the harvest interval",
    );
    this.#delayP99 = figure(
      "nodejs.eventloop.delay.p99",
      "s",
      "99th percentile of the event-loop delay over the harvest interval",
    );
    try {
      this.#requests = new UpDownCounter(s, HTTP_ACTIVE_REQUESTS, {
        unit: "{request}",
        description: "Number of active HTTP server requests",
      });
    } catch {
      this.#requests = undefined;
    }
  }

  /**
   * Records the heap, the delay over the interval (then starts a new one) and
   * the change in requests in flight. Never throws.
   */
  sample(): void {
    if (this.#requests === undefined && this.#heapUsed === undefined) return;
    try {
      const heap = this.#heap?.();
      if (heap !== undefined) {
        setFigure(this.#heapUsed, heap.used);
        if (heap.limit > 0) setFigure(this.#heapLimit, heap.limit);
      }
      const d = this.delays;
      if (d.count > 0) {
        // To the µs: the probe's clock and wakeups are not finer than that.
        setFigure(this.#delayMax, Math.round(d.max * 1000) / 1e6);
        setFigure(this.#delayP99, Math.round(d.percentile(99) * 1000) / 1e6);
        d.reset();
      }
      const active = this.#active();
      // The first report sends the level even at 0: the series exists from the start.
      const change = this.#reported < 0 ? active : active - this.#reported;
      if (change !== 0 || this.#reported < 0) this.#requests?.add(change, this.#slot);
      this.#reported = active;
    } catch {
      // Runtime figures must never stop a harvest.
    }
  }
}
