/**
 * The in-process half of the `record` benchmark, run once under each runtime:
 * the cost of one `counter.add` and one `histogram.record` with an attributes
 * object, for forklift's reporter, the OpenTelemetry JS SDK (with a reader
 * attached, so it aggregates), a plain Map count as the floor, the reading of
 * the attributes object alone (what no recording by value avoids), and a second
 * forklift instrument measured like the first (an A/A pair: how far two
 * measures of the same code differ in one run). Prints one JSON line:
 * nanoseconds per call, median and best of the rounds and every round, per case,
 * by the wall clock and by the CPU time of the process.
 *
 * Usage: deno run -A scripts/bench/record_loop.ts [--rounds N] [--round-ms MS] [--out FILE]
 *        bun scripts/bench/record_loop.ts [--rounds N] [--round-ms MS] [--out FILE]
 *
 * @module
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import process from "node:process";
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { counter, histogram, HTTP_DURATION_BOUNDARIES } from "../../mod.ts";
import { getReporter } from "../../src/reporter/reporter.ts";
import { median, min } from "./_stats.ts";

const { values: opts } = parseArgs({
  options: {
    rounds: { type: "string" },
    "round-ms": { type: "string" },
    out: { type: "string" },
  },
});
const ROUNDS = Number(opts.rounds ?? 15);
const ROUND_MS = Number(opts["round-ms"] ?? 60);

/** One case's figures, in ns per call: wall clock, and CPU time of the process. */
export interface LoopCase {
  median: number;
  best: number;
  calls: number;
  /** Every round, wall clock. */
  rounds: number[];
  cpuMedian: number;
  /** Every round, CPU time (user and system, every thread of the process). */
  cpuRounds: number[];
}

// Histogram values spread over the buckets (seconds, 1 ms .. 3 s), the same
// sequence for every implementation.
const VALUES = new Float64Array(1024);
let seed = 42;
for (let i = 0; i < VALUES.length; i++) {
  seed = (seed * 1103515245 + 12345) >>> 0;
  VALUES[i] = 0.001 + (seed / 2 ** 32) ** 3 * 3;
}

class BenchReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}
const reader = new BenchReader();
const meter = new MeterProvider({ readers: [reader] }).getMeter("bench");
const otelCounter = meter.createCounter("bench.otel.counter");
const otelHistogram = meter.createHistogram("bench.otel.histogram", {
  unit: "s",
  advice: { explicitBucketBoundaries: [...HTTP_DURATION_BOUNDARIES] },
});

const fkCounter = counter("bench.counter");
const fkHistogram = histogram("bench.histogram", {
  unit: "s",
  boundaries: HTTP_DURATION_BOUNDARIES,
});
const againCounter = counter("bench.again.counter");
const againHistogram = histogram("bench.again.histogram", {
  unit: "s",
  boundaries: HTTP_DURATION_BOUNDARIES,
});

const floorCounts = new Map<string, number>();
const floorSums = new Map<string, number>();
function floorAdd(v: number, attrs: { a: string; b: string }): void {
  floorCounts.set(attrs.b, (floorCounts.get(attrs.b) ?? 0) + v);
}
function floorRecord(v: number, attrs: { a: string; b: string }): void {
  floorSums.set(attrs.b, (floorSums.get(attrs.b) ?? 0) + v);
}

// The least any recording that takes its attributes by value does, whatever
// it keeps them in: the object written at the call, and each of its names and
// values read once and compared. (A cache keyed by the object itself could
// skip this, and goes wrong when a caller changes the object between calls.)
// The last name and value of the set, written twice so that no engine takes
// them for constants and folds the comparisons away.
let readName = "";
let readValue: unknown = undefined;
[readName, readValue] = ["b", "y"];
let readHits = 0;
function readAttributes(attrs: Readonly<Record<string, unknown>>): void {
  for (const name in attrs) {
    const value = attrs[name];
    if (name === readName && value === readValue) readHits++;
  }
}

// One function per case, each with its own call site, so that no case's
// inline caches see another's receiver. The attributes object is written at
// the call, as applications write it.
const CASES: Record<string, (n: number) => void> = {
  "floor.counter": (n) => {
    for (let i = 0; i < n; i++) floorAdd(1, { a: "x", b: "y" });
  },
  "read": (n) => {
    for (let i = 0; i < n; i++) readAttributes({ a: "x", b: "y" });
  },
  "forklift.counter": (n) => {
    for (let i = 0; i < n; i++) fkCounter.add(1, { a: "x", b: "y" });
  },
  "again.counter": (n) => {
    for (let i = 0; i < n; i++) againCounter.add(1, { a: "x", b: "y" });
  },
  "otel.counter": (n) => {
    for (let i = 0; i < n; i++) otelCounter.add(1, { a: "x", b: "y" });
  },
  "floor.histogram": (n) => {
    for (let i = 0; i < n; i++) floorRecord(VALUES[i & 1023], { a: "x", b: "y" });
  },
  "forklift.histogram": (n) => {
    for (let i = 0; i < n; i++) fkHistogram.record(VALUES[i & 1023], { a: "x", b: "y" });
  },
  "again.histogram": (n) => {
    for (let i = 0; i < n; i++) againHistogram.record(VALUES[i & 1023], { a: "x", b: "y" });
  },
  "otel.histogram": (n) => {
    for (let i = 0; i < n; i++) otelHistogram.record(VALUES[i & 1023], { a: "x", b: "y" });
  },
};

const calls: Record<string, number> = {};
/** The CPU time of this process so far, in ms (user and system, every thread). */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
/** Runs `n` calls of case `name`: wall-clock and CPU ms. */
function timed(name: string, n: number): { ms: number; cpu: number } {
  const c0 = cpuMs();
  const t0 = performance.now();
  CASES[name](n);
  const ms = performance.now() - t0;
  const cpu = cpuMs() - c0;
  calls[name] = (calls[name] ?? 0) + n;
  return { ms, cpu };
}

// Warm up (JIT tiers settle) and size each round to about ROUND_MS, so that a
// fast case is not timed over a span close to the clock's resolution.
const size: Record<string, number> = {};
for (const name of Object.keys(CASES)) {
  let n = 1000;
  for (;;) {
    const { ms } = timed(name, n);
    if (ms >= ROUND_MS / 4 || n >= 1 << 28) {
      size[name] = Math.max(1000, Math.round((n * ROUND_MS) / Math.max(ms, 0.001)));
      break;
    }
    n *= 4;
  }
  timed(name, size[name]);
}

// Rounds interleave the cases so that drift (frequency, a neighbour's load)
// hits them all alike, in the opposite order every other round so that no
// case always runs just after the same neighbour.
const perCall: Record<string, number[]> = {};
const perCallCpu: Record<string, number[]> = {};
const names = Object.keys(CASES);
for (let r = 0; r < ROUNDS; r++) {
  for (const name of r % 2 === 0 ? names : [...names].reverse()) {
    const { ms, cpu } = timed(name, size[name]);
    (perCall[name] ??= []).push((ms * 1e6) / size[name]);
    (perCallCpu[name] ??= []).push((cpu * 1e6) / size[name]);
  }
}

// Check that every implementation kept every call: this also keeps the
// work observable, so no engine may drop it.
const collected = await reader.collect();
const otelTotals: Record<string, number> = {};
for (const sm of collected.resourceMetrics.scopeMetrics) {
  for (const m of sm.metrics) {
    for (const p of m.dataPoints) {
      const v = p.value as number | { count: number };
      otelTotals[m.descriptor.name] = typeof v === "number" ? v : v.count;
    }
  }
}
const fkTotals: Record<string, number> = {};
for (const m of getReporter().storage.cut().metrics) {
  for (const p of m.points) fkTotals[m.name] = (fkTotals[m.name] ?? 0) + (p.value ?? p.count ?? 0);
}
const checks = {
  "floor.counter": floorCounts.get("y"),
  "read": readHits,
  "forklift.counter": fkTotals["bench.counter"],
  "again.counter": fkTotals["bench.again.counter"],
  "otel.counter": otelTotals["bench.otel.counter"],
  "forklift.histogram": fkTotals["bench.histogram"],
  "again.histogram": fkTotals["bench.again.histogram"],
  "otel.histogram": otelTotals["bench.otel.histogram"],
};
const mismatches = Object.entries(checks).filter(([k, v]) => v !== calls[k]).map(([k, v]) =>
  `${k}: ${v} of ${calls[k]}`
);

const out: Record<string, LoopCase> = {};
for (const [name, xs] of Object.entries(perCall)) {
  const cpu = perCallCpu[name];
  out[name] = {
    median: median(xs),
    best: min(xs),
    calls: size[name],
    rounds: xs,
    cpuMedian: median(cpu),
    cpuRounds: cpu,
  };
}
const result = JSON.stringify({ cases: out, mismatches, floorSum: floorSums.get("y") });
// Every round of every case is more than a parent keeps of a child's output:
// with --out the figures go to that file, and the line printed names it.
if (opts.out === undefined) console.log(result);
else {
  writeFileSync(opts.out, result);
  console.log(JSON.stringify({ out: opts.out }));
}
process.exit(0);
