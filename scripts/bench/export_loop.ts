/**
 * The in-process half of the `export` benchmark, run once under each
 * runtime: the main-thread time of one OTLP/HTTP protobuf export body of the
 * same 10,000 series (8,000 counter series and 2,000 request-duration
 * histogram series), built by the master (aggregate, batch, encode) and by
 * the OpenTelemetry JS SDK (reader collect, then its protobuf serializer).
 * Rounds alternate; prints one JSON line with medians in ms and body sizes.
 *
 * Usage: deno run -A scripts/bench/export_loop.ts [--rounds N]
 *        bun scripts/bench/export_loop.ts [--rounds N]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { ProtobufMetricsSerializer } from "@opentelemetry/otlp-transformer";
import { Aggregator } from "../../src/export/aggregator.ts";
import { OtlpBatcher } from "../../src/export/otlp_batch.ts";
import { encodeOtlpProtobuf } from "../../src/export/otlp_protobuf.ts";
import { otlpJson } from "../../src/protocol/otlp.ts";
import { HTTP_DURATION_BOUNDARIES } from "../../mod.ts";
import { median } from "./_stats.ts";

const { values: opts } = parseArgs({ options: { rounds: { type: "string" } } });
const ROUNDS = Number(opts.rounds ?? 11);
const COUNTERS = 8_000;
const HISTOGRAMS = 2_000;

class BenchReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

const counterAttrs = (i: number) => ({ "job.queue": `q${i % 100}`, "job.kind": `k${i}` });
const histAttrs = (i: number) => ({
  "http.request.method": ["GET", "POST", "PUT", "DELETE"][i % 4],
  "http.route": `/r/${i}`,
  "http.response.status_code": 200,
});
const nBuckets = HTTP_DURATION_BOUNDARIES.length + 1;

// forklift: the master's aggregate of the same series, as harvests build it.
const aggregator = new Aggregator({ cardinalityLimit: 100_000 });
aggregator.merge(1, [
  {
    name: "jobs.done",
    kind: "counter",
    unit: "{job}",
    points: Array.from({ length: COUNTERS }, (_, i) => ({ attributes: counterAttrs(i), value: i })),
  },
  {
    name: "http.server.request.duration",
    kind: "histogram",
    unit: "s",
    boundaries: [...HTTP_DURATION_BOUNDARIES],
    points: Array.from({ length: HISTOGRAMS }, (_, i) => ({
      attributes: histAttrs(i),
      count: nBuckets,
      sum: 1.5,
      min: 0.001,
      max: 9,
      buckets: Array.from({ length: nBuckets }, () => 1),
    })),
  },
]);
const batcher = new OtlpBatcher({
  temporality: "cumulative",
  startMs: Date.now(),
  resource: () => ({ "service.name": "bench", "host.name": "h", "process.pid": 1 }),
  scope: { name: "forklift", version: "0" },
});

// The OpenTelemetry SDK, with the same series recorded.
// Without a higher limit the SDK would fold all but 2,000 series per instrument into one.
const reader = new BenchReader({ cardinalitySelector: () => 100_000 });
const meter = new MeterProvider({ readers: [reader] }).getMeter("bench");
const jobs = meter.createCounter("jobs.done", { unit: "{job}" });
const duration = meter.createHistogram("http.server.request.duration", {
  unit: "s",
  advice: { explicitBucketBoundaries: [...HTTP_DURATION_BOUNDARIES] },
});
for (let i = 0; i < COUNTERS; i++) jobs.add(i, counterAttrs(i));
for (let i = 0; i < HISTOGRAMS; i++) {
  for (const b of [0.001, ...HTTP_DURATION_BOUNDARIES.map((x) => x * 0.99), 11]) {
    duration.record(b, histAttrs(i));
  }
}

function forklift(): number {
  return encodeOtlpProtobuf(batcher.build(aggregator.collect(), Date.now()).batch).length;
}

function forkliftJson(): number {
  return JSON.stringify(otlpJson(batcher.build(aggregator.collect(), Date.now()).batch)).length;
}

async function otel(): Promise<number> {
  const { resourceMetrics } = await reader.collect();
  // The serializer's types name the SDK 1.x it was built with; the data is the same shape
  // (both sides encode to the same bytes, give or take the resource).
  return ProtobufMetricsSerializer.serializeRequest(resourceMetrics as never)?.length ?? 0;
}

const times: Record<string, number[]> = { forklift: [], forkliftJson: [], otel: [] };
const bytes: Record<string, number> = {};
for (let round = 0; round < ROUNDS + 1; round++) {
  for (
    const [name, fn] of [["forklift", forklift], ["forkliftJson", forkliftJson], [
      "otel",
      otel,
    ]] as const
  ) {
    const t0 = performance.now();
    bytes[name] = await fn();
    const ms = performance.now() - t0;
    // The first round warms the code up.
    if (round > 0) times[name].push(ms);
  }
}
console.log(JSON.stringify({
  series: COUNTERS + HISTOGRAMS,
  ms: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])),
  bytes,
}));
