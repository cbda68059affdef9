import { test } from "node:test";
import assert from "node:assert/strict";
import {
  DelayHistogram,
  heapReader,
  HTTP_ACTIVE_REQUESTS,
  LOOP_PROBE_IDLE_MS,
  LOOP_PROBE_MS,
  LoopProbe,
  RuntimeSampler,
} from "../../src/reporter/runtime_metrics.ts";
import { Storage } from "../../src/reporter/storage.ts";
import { HttpMetrics, type NodeResponse } from "../../src/reporter/http.ts";
import { Reporter } from "../../src/reporter/reporter.ts";
import type { HarvestMetric, MetricDelta } from "../../src/protocol/messages.ts";
import { FakeHost, settle, welcome } from "../_helpers/fake_host.ts";

/** The value of the one point of `name` in a cut. */
function valueOf(
  metrics: readonly (MetricDelta | HarvestMetric)[],
  name: string,
): number | undefined {
  const m = metrics.find((x) => x.name === name) as HarvestMetric | undefined;
  return m?.points[0]?.value ?? m?.values?.[0];
}

test("DelayHistogram.percentile() stays within one bucket (19%) of the exact percentile", () => {
  const h = new DelayHistogram();
  // A skewed spread over five orders of magnitude, as loop delays are.
  const values: number[] = [];
  let x = 12345;
  for (let i = 0; i < 5000; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    values.push(0.01 * 10 ** ((x / 2147483648) * 5));
  }
  for (const v of values) h.record(v);
  const sorted = [...values].sort((a, b) => a - b);
  for (const p of [50, 90, 99, 100]) {
    const exact = sorted[Math.ceil((p / 100) * sorted.length) - 1];
    const got = h.percentile(p);
    assert.ok(got >= exact && got <= exact * 1.19, `p${p}: ${got} for ${exact}`);
  }
  assert.equal(h.count, 5000);
  assert.equal(h.min, sorted[0]);
  assert.equal(h.max, sorted.at(-1));
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  assert.ok(Math.abs(h.mean - mean) < 1e-9 * mean);
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length);
  assert.ok(Math.abs(h.stddev - sd) < 1e-6 * sd, `stddev ${h.stddev} for ${sd}`);
});

test("DelayHistogram.percentile() never leaves the minimum and maximum recorded", () => {
  const h = new DelayHistogram();
  h.record(100);
  assert.deepEqual([h.percentile(0), h.percentile(50), h.percentile(99)], [100, 100, 100]);
  h.record(0);
  assert.deepEqual([h.min, h.percentile(100)], [0, 100]);
  assert.ok(h.percentile(50) <= 0.001, "the first bucket holds up to 1 µs");
});

test("DelayHistogram.record() takes a negative or non-finite delay as 0 and reset() empties it", () => {
  const h = new DelayHistogram();
  for (const v of [-5, NaN, Infinity, 1e12]) h.record(v);
  assert.deepEqual([h.count, h.min, h.max], [4, 0, 1e12]);
  assert.equal(h.percentile(99), 1e12);
  h.reset();
  assert.deepEqual([h.count, h.min, h.max, h.mean, h.stddev, h.percentile(99)], [0, 0, 0, 0, 0, 0]);
});

test("LoopProbe.turn() records how late each turn came, from the previous turn", () => {
  const h = new DelayHistogram();
  let now = 1000;
  const probe = new LoopProbe(h, () => now, 20, 20);
  probe.start();
  now = 1021, probe.turn(false); // 1 ms late
  now = 1141, probe.turn(false); // the loop was held 100 ms
  now = 1155, probe.turn(false); // a runtime catching up fires early: no delay
  assert.deepEqual([h.count, h.min, h.max], [3, 0, 100]);
});

test("LoopProbe.turn() turns fast while requests are in flight or the loop is late, slow after a quiet spell", () => {
  const h = new DelayHistogram();
  let now = 0;
  const probe = new LoopProbe(h, () => now, 10, 200);
  probe.start();
  assert.equal(probe.periodMs, 200);
  now += 200;
  assert.equal(probe.turn(false), false, "quiet: stays slow");
  now += 200;
  assert.equal(probe.turn(true), true, "requests in flight: fast");
  assert.equal(probe.periodMs, 10);
  now += 10;
  assert.equal(probe.turn(true), false);
  let turns = 0;
  while (probe.periodMs === 10) {
    now += 10;
    probe.turn(false);
    turns++;
  }
  assert.equal(turns * 10, 250, "slow again after 250 ms of quiet fast turns");
  now += 200 + 50;
  assert.equal(
    probe.turn(false),
    true,
    "a late turn (50 ms) makes it fast, with nothing in flight",
  );
  assert.equal(probe.periodMs, 10);
  assert.equal(h.max, 50);
});

test("RuntimeSampler.sample() sends heap, delay and requests in flight at a harvest when they changed, the level first", () => {
  const storage = new Storage();
  let now = 0;
  let inFlight = 0;
  const host = { now: () => now };
  const sampler = new RuntimeSampler(storage, host, () => inFlight);
  sampler.sample(); // not started: nothing
  assert.deepEqual(storage.cut().metrics, []);
  sampler.start(2, () => ({ used: 5e6, limit: 4e9 }));
  sampler.start(2); // idempotent: one probe
  assert.equal(sampler.paceMs, LOOP_PROBE_IDLE_MS);
  sampler.sample();
  let cut = storage.cut().metrics;
  assert.equal(valueOf(cut, HTTP_ACTIVE_REQUESTS), 0, "the level goes first, even at 0");
  assert.deepEqual(cut.find((m) => m.name === HTTP_ACTIVE_REQUESTS)?.points[0].attributes, {
    worker: "2",
  });
  assert.equal(valueOf(cut, "nodejs.eventloop.delay.max"), undefined, "no turn, no delay");
  assert.equal(valueOf(cut, "v8js.memory.heap.used"), 5e6);
  assert.equal(valueOf(cut, "v8js.memory.heap.limit"), 4e9);

  inFlight = 3;
  now = LOOP_PROBE_IDLE_MS + 3;
  assert.equal(sampler.turn(), true, "busy: a new pace");
  assert.equal(sampler.paceMs, LOOP_PROBE_MS, "busy: fast");
  now += LOOP_PROBE_MS + 120, sampler.turn();
  sampler.sample();
  cut = storage.cut().metrics;
  assert.equal(valueOf(cut, HTTP_ACTIVE_REQUESTS), 3);
  assert.equal(valueOf(cut, "nodejs.eventloop.delay.max"), 0.12);
  assert.equal(valueOf(cut, "v8js.memory.heap.limit"), undefined, "unchanged: not sent again");
  assert.equal(valueOf(cut, "v8js.memory.heap.used"), undefined, "unchanged: not sent again");
  const p99 = valueOf(cut, "nodejs.eventloop.delay.p99")!;
  assert.ok(p99 <= 0.12 && p99 > 0.1, `p99 ${p99}`);
  const unit = cut.find((m) => m.name === "nodejs.eventloop.delay.p99")?.unit;
  assert.equal(unit, "s");

  inFlight = 1;
  sampler.sample();
  cut = storage.cut().metrics;
  assert.equal(valueOf(cut, HTTP_ACTIVE_REQUESTS), -2, "a change, not the level, after the first");
  assert.equal(valueOf(cut, "nodejs.eventloop.delay.max"), undefined, "the interval started anew");
  sampler.stop();
  assert.equal(sampler.paceMs, 0, "stopped: no pace");
  assert.equal(sampler.turn(), false);
});

test("RuntimeSampler.start() leaves an instrument the app already named to the app", () => {
  const storage = new Storage();
  const host = { now: () => 0 };
  storage.register({ name: "v8js.memory.heap.used", kind: "counter" });
  const sampler = new RuntimeSampler(storage, host, () => 0);
  sampler.start(1, () => ({ used: 7, limit: 9 }));
  sampler.sample();
  const cut = storage.cut().metrics;
  assert.equal(valueOf(cut, "v8js.memory.heap.used"), undefined);
  assert.equal(valueOf(cut, "v8js.memory.heap.limit"), 9);
});

test("heapReader() reads the heap used without loading a module, and no limit", () => {
  const read = heapReader();
  assert.ok(read !== undefined);
  const keep = Array.from({ length: 100_000 }, (_, i) => ({ i }));
  const heap = read();
  assert.ok(heap.used > 1_000_000 && heap.used < 2 ** 32, `used ${heap.used}`);
  assert.equal(heap.limit, 0);
  assert.equal(keep.length, 100_000);
});

test("HttpMetrics.active counts the requests in flight of wrapped and node:http servers", async () => {
  const http = new HttpMetrics(new Storage());
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const handler = http.wrap(async (_req: Request) => {
    await gate;
    return new Response("ok");
  });
  const throwing = http.wrap((_req: Request): Response => {
    throw new Error("boom");
  });
  const pending = [1, 2].map(() => handler(new Request("http://localhost/")) as Promise<Response>);
  assert.equal(http.active, 2);
  assert.throws(() => throwing(new Request("http://localhost/")), /boom/);
  assert.equal(http.active, 2, "a handler that throws is no longer in flight");
  const res: NodeResponse = { statusCode: 200 };
  http.nodeRequest({ method: "GET" }, res);
  assert.equal(http.active, 3);
  http.nodeResponded(res);
  http.nodeResponded(res);
  assert.equal(http.active, 2, "a second end() is not a second request");
  release();
  await Promise.all(pending);
  assert.equal(http.active, 0);
});

test("Reporter welcome starts the runtime sampler on a host that measures its runtime, shutdown stops it", async () => {
  const host = new FakeHost();
  host.runtimeMetrics = true;
  const reporter = new Reporter(host);
  reporter.start();
  assert.equal(host.timers.size, 0, "nothing armed before welcome");
  host.deliver(welcome({ heartbeat_ms: 0 }));
  const probes = host.intervals().filter((t) => t.ms === LOOP_PROBE_IDLE_MS);
  assert.equal(probes.length, 1);
  host.advance(5000);
  const [harvest] = host.ofType("harvest");
  assert.equal(valueOf(harvest.metrics, HTTP_ACTIVE_REQUESTS), 0);
  assert.ok(valueOf(harvest.metrics, "nodejs.eventloop.delay.max")! >= 0);
  host.deliver({ type: "ack", v: 1, seq: 1 });
  host.deliver({ type: "shutdown", v: 1, graceful_ms: 100 });
  await settle();
  assert.equal(host.intervals().length, 0, "the probe is cleared with the harvest timer");
});

test("Reporter on a host that does not measure its runtime sends no runtime metrics", () => {
  const host = new FakeHost();
  const reporter = new Reporter(host);
  reporter.start();
  host.deliver(welcome({ heartbeat_ms: 0 }));
  host.advance(5000);
  assert.deepEqual(host.ofType("harvest")[0].metrics, []);
  assert.equal(host.intervals().length, 1);
});
