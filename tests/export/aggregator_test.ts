import { test } from "node:test";
import assert from "node:assert/strict";
import { Aggregator, type DeclarationChange } from "../../src/export/aggregator.ts";
import { canonicalAttributes } from "../../src/protocol/attributes.ts";
import { SeriesTable } from "../../src/reporter/series_table.ts";
import type {
  HarvestMetric,
  HarvestPoint,
  MetricDelta,
  PointDelta,
} from "../../src/protocol/messages.ts";

function counter(name: string, value: number, attributes = {}): MetricDelta {
  return { name, kind: "counter", points: [{ attributes, value }] };
}

function gauge(name: string, value: number, attributes = {}): MetricDelta {
  return { name, kind: "gauge", points: [{ attributes, value }] };
}

function histogram(points: PointDelta[], boundaries = [0.1, 1]): MetricDelta {
  return { name: "http.server.request.duration", kind: "histogram", unit: "s", boundaries, points };
}

function valueOf(agg: Aggregator, name: string, attributes = {}): number | undefined {
  const metric = agg.collect().find((m) => m.name === name);
  const key = canonicalAttributes(attributes).key;
  return metric?.points.find((p) => canonicalAttributes(p.attributes).key === key)?.value;
}

test("Aggregator.merge() adds counter deltas from several workers into one sum", () => {
  const agg = new Aggregator();
  assert.equal(agg.merge(1, [counter("app.hits", 2)]), 0);
  assert.equal(agg.merge(2, [counter("app.hits", 3)]), 0);
  assert.equal(agg.merge(1, [counter("app.hits", 4)]), 0);
  assert.equal(valueOf(agg, "app.hits"), 9);
});

test("Aggregator.merge() drops and counts a delta that would carry a sum past the largest double", () => {
  const agg = new Aggregator();
  const big = Number.MAX_VALUE / 2 + Number.MAX_VALUE / 4;
  assert.equal(agg.merge(1, [counter("app.hits", big)]), 0);
  assert.equal(agg.merge(2, [counter("app.hits", big)]), 1);
  assert.equal(valueOf(agg, "app.hits"), big, "the sum stays the last finite one");
  assert.equal(agg.merge(1, [counter("app.hits", 1)]), 0, "a small delta still adds");
  const updown: MetricDelta = {
    name: "app.queue",
    kind: "updown",
    points: [{ attributes: {}, value: big }],
  };
  assert.equal(agg.merge(1, [updown]), 0);
  assert.equal(agg.merge(2, [updown]), 1);
  assert.equal(valueOf(agg, "app.queue"), big);
  const h = (sum: number) => histogram([{ attributes: {}, count: 1, sum, buckets: [0, 0, 1] }]);
  assert.equal(agg.merge(1, [h(big)]), 0);
  assert.equal(agg.merge(2, [h(big)]), 1);
  const point = agg.collect().find((m) => m.name === "http.server.request.duration")!.points[0];
  assert.equal(point.count, 1);
  assert.equal(point.sum, big);
  assert.equal(agg.dropped, 3);
});

test("Aggregator.merge() never lets a counter go backwards when a worker is removed", () => {
  const agg = new Aggregator();
  agg.merge(1, [counter("app.hits", 10, { route: "/a" })]);
  agg.merge(2, [counter("app.hits", 5, { route: "/a" })]);
  agg.removeWorker(2);
  assert.equal(valueOf(agg, "app.hits", { route: "/a" }), 15);
  // The respawned worker starts again from zero and sends small deltas.
  agg.merge(2, [counter("app.hits", 1, { route: "/a" })]);
  assert.equal(valueOf(agg, "app.hits", { route: "/a" }), 16);
});

test("Aggregator.removeWorker() takes a crashed worker's contribution out of an up-down counter", () => {
  const agg = new Aggregator();
  const open = (worker: number, value: number, attributes = {}) =>
    agg.merge(worker, [{
      name: "app.connections.open",
      kind: "updown",
      points: [{ attributes, value }],
    }]);
  open(1, 5);
  open(2, 2);
  open(1, -3);
  assert.equal(valueOf(agg, "app.connections.open"), 4);
  // Worker 1 dies with 2 connections open: they are closed with it.
  agg.removeWorker(1);
  assert.equal(valueOf(agg, "app.connections.open"), 2);
  // Its successor starts from zero, by id columns as well as points.
  agg.merge(3, [{
    name: "app.connections.open",
    kind: "updown",
    points: [{ id: 0, attributes: { pool: "a" }, value: 1 }],
  }]);
  agg.merge(3, [{
    name: "app.connections.open",
    kind: "updown",
    points: [],
    ids: [0],
    values: [6],
  }]);
  open(2, 1, { pool: "a" });
  assert.equal(valueOf(agg, "app.connections.open", { pool: "a" }), 8);
  agg.removeWorker(3);
  assert.equal(valueOf(agg, "app.connections.open", { pool: "a" }), 1);
  agg.removeWorker(2);
  assert.equal(valueOf(agg, "app.connections.open"), 0);
  assert.equal(valueOf(agg, "app.connections.open", { pool: "a" }), 0);
});

test("Aggregator.merge() adds histogram counts, sums and buckets and keeps min and max", () => {
  const agg = new Aggregator();
  agg.merge(1, [
    histogram([{ attributes: {}, count: 2, sum: 0.6, min: 0.05, max: 0.55, buckets: [1, 1, 0] }]),
  ]);
  agg.merge(2, [
    histogram([{ attributes: {}, count: 3, sum: 4.2, min: 0.2, max: 3, buckets: [0, 2, 1] }]),
  ]);
  agg.removeWorker(2);
  const [metric] = agg.collect();
  assert.deepEqual(metric, {
    name: "http.server.request.duration",
    kind: "histogram",
    unit: "s",
    boundaries: [0.1, 1],
    points: [{ attributes: {}, count: 5, sum: 0.6 + 4.2, min: 0.05, max: 3, buckets: [1, 3, 1] }],
  });
});

test("Aggregator.merge() treats attributes in another key order as the same series", () => {
  const agg = new Aggregator();
  agg.merge(1, [counter("app.hits", 1, { a: "x", b: 2 })]);
  agg.merge(2, [counter("app.hits", 2, { b: 2, a: "x" })]);
  const [metric] = agg.collect();
  assert.equal(metric.points.length, 1);
  assert.equal(metric.points[0].value, 3);
});

test("canonicalAttributes() ignores key order and keeps value types apart", () => {
  assert.equal(
    canonicalAttributes({ a: 1, b: true }).key,
    canonicalAttributes({ b: true, a: 1 }).key,
  );
  assert.notEqual(canonicalAttributes({ a: 1 }).key, canonicalAttributes({ a: "1" }).key);
});

test("Aggregator.merge() keys attributes as the reporter's series table does", () => {
  // Sets the reporter cleans (unset values go, non-finite numbers and objects
  // become strings, integer-like names sort as strings): the master must name
  // the same series for them, whoever sent the points.
  const sets: Record<string, unknown>[] = [
    { a: "x", b: undefined },
    { a: "x", b: null },
    { n: NaN, i: Infinity },
    { o: { deep: [1] } },
    { "10": "t", "9": "n" },
  ];
  for (const raw of sets) {
    const reporter = new SeriesTable(0).get(raw).attributes;
    const agg = new Aggregator();
    agg.merge(1, [counter("app.hits", 1, raw as Record<string, string>)]);
    agg.merge(1, [counter("app.hits", 2, reporter)]);
    const [metric] = agg.collect();
    assert.deepEqual(metric.points, [{ attributes: reporter, value: 3 }], JSON.stringify(raw));
  }
});

test("Aggregator.merge() keeps one gauge series per worker, last value wins", () => {
  const agg = new Aggregator();
  agg.merge(1, [gauge("app.queue", 4, { q: "mail" })]);
  agg.merge(2, [gauge("app.queue", 9, { q: "mail" })]);
  agg.merge(1, [gauge("app.queue", 6, { q: "mail" })]);
  assert.deepEqual(agg.collect()[0].points, [
    { attributes: { q: "mail", worker: "1" }, value: 6 },
    { attributes: { q: "mail", worker: "2" }, value: 9 },
  ]);
});

test("Aggregator.removeWorker() drops that worker's gauges and keeps everything else", () => {
  const agg = new Aggregator();
  agg.merge(1, [gauge("app.queue", 4), counter("app.hits", 1)]);
  agg.merge(2, [gauge("app.queue", 9), counter("app.hits", 1)]);
  agg.removeWorker(1);
  const metrics = agg.collect();
  assert.deepEqual(metrics.map((m) => m.name), ["app.hits", "app.queue"]);
  assert.deepEqual(metrics[1].points, [{ attributes: { worker: "2" }, value: 9 }]);
  assert.equal(metrics[0].points[0].value, 2);
  agg.removeWorker(2);
  assert.deepEqual(agg.collect().map((m) => m.name), ["app.hits"]);
});

test("Aggregator.merge() keeps a declaration live workers report on, holds one other aside and drops and counts a third", () => {
  const conflicts: string[] = [];
  const agg = new Aggregator({
    onConflict: (worker, name, held, offered) =>
      conflicts.push(`${worker} ${name}: ${held} / ${offered}`),
  });
  agg.merge(1, [counter("app.hits", 1)]);
  agg.merge(2, [counter("app.hits", 2)]);
  const gauge: MetricDelta = {
    name: "app.hits",
    kind: "gauge",
    points: [{ attributes: {}, value: 7 }, { attributes: { a: "b" }, value: 8 }],
  };
  assert.equal(agg.merge(3, [gauge]), 0, "the first other declaration is held pending");
  const other = { ...counter("app.hits", 5), unit: "ms" };
  assert.equal(agg.merge(3, [other]), 1);
  // The honest workers keep adding to what they had.
  assert.equal(agg.merge(1, [counter("app.hits", 1)]), 0);
  assert.deepEqual(conflicts, ["3 app.hits: counter  / counter ms"]);
  assert.deepEqual(agg.collect(), [
    { name: "app.hits", kind: "counter", points: [{ attributes: {}, value: 4 }] },
  ]);
  assert.equal(agg.dropped, 1);
});

test("Aggregator.merge() keeps a histogram's boundaries while a worker that reports them lives", () => {
  const agg = new Aggregator();
  agg.merge(1, [histogram([{ attributes: {}, count: 1, sum: 0.5, buckets: [0, 1, 0] }])]);
  const newBounds = histogram(
    [{ attributes: {}, count: 3, sum: 0.5, buckets: [0, 1, 2, 0] }],
    [0.1, 1, 10],
  );
  assert.equal(agg.merge(2, [newBounds]), 0);
  assert.equal(agg.merge(2, [newBounds]), 0);
  assert.equal(
    agg.merge(1, [histogram([{ attributes: {}, count: 1, sum: 5, buckets: [0, 0, 1] }])]),
    0,
  );
  const [h] = agg.collect();
  assert.deepEqual(h.boundaries, [0.1, 1]);
  assert.equal(h.points[0].count, 2);
  assert.equal(h.points[0].sum, 5.5);
});

test("Aggregator.removeWorker() hands a name to the new boundaries when the last worker on the old ones exits, with every point of the new generation", () => {
  const changes: DeclarationChange[] = [];
  const agg = new Aggregator({ onDeclaration: (c) => changes.push(c), now: () => 42 });
  const old = (buckets: number[]) =>
    histogram([{ attributes: {}, count: buckets[0] + buckets[1] + buckets[2], sum: 1, buckets }]);
  const renewed = (n: number) =>
    histogram([{ attributes: {}, count: n, sum: n, buckets: [0, n, 0, 0] }], [0.1, 1, 10]);
  // Generation 1: workers 1 and 2. A roll replaces 1 by 3, then 2 by 4.
  agg.merge(1, [old([1, 0, 0])], 1);
  agg.merge(2, [old([0, 1, 0])], 2);
  assert.equal(agg.merge(3, [renewed(2)], 1), 0);
  agg.merge(2, [old([0, 0, 1])], 2);
  agg.removeWorker(1);
  assert.deepEqual(agg.collect()[0].boundaries, [0.1, 1], "worker 2 still reports the old ones");
  assert.equal(agg.merge(4, [renewed(5)], 2), 0);
  assert.equal(agg.merge(3, [renewed(1)], 1), 0);
  agg.removeWorker(2);
  assert.equal(agg.merge(4, [renewed(10)], 2), 0);
  const [h] = agg.collect();
  assert.deepEqual(h.boundaries, [0.1, 1, 10]);
  assert.deepEqual([h.points[0].count, h.points[0].buckets], [18, [0, 18, 0, 0]]);
  assert.equal(h.startMs, 42, "the series started anew");
  assert.equal(agg.dropped, 0);
  assert.deepEqual(changes.map((c) => [c.outcome, c.worker]), [
    ["pending", 3],
    ["promoted", undefined],
  ]);
  assert.equal(changes[1].offered, "histogram s [0.1,1,10]");
});

test("Aggregator.merge() lets a hostile declaration never displace one a live honest worker holds, and forgets it with its worker", () => {
  const agg = new Aggregator();
  const honest = (value: number) => counter("jobs.done", value);
  const hostile = { ...counter("jobs.done", 1_000), unit: "ms" };
  agg.merge(1, [honest(3)]);
  const honestBytes = agg.bytes;
  for (let i = 0; i < 100; i++) agg.merge(2, [hostile]);
  agg.merge(1, [honest(4)]);
  assert.deepEqual(agg.collect(), [
    { name: "jobs.done", kind: "counter", points: [{ attributes: {}, value: 7 }] },
  ]);
  const bytes = agg.bytes;
  agg.removeWorker(2);
  assert.ok(agg.bytes < bytes);
  assert.equal(agg.bytes, honestBytes, "the pending declaration's state was given back whole");
  agg.merge(1, [honest(1)]);
  // A later worker declaring it otherwise is held aside again, not promoted.
  agg.merge(3, [{ ...counter("jobs.done", 1), unit: "s" }]);
  agg.removeWorker(3);
  assert.deepEqual(agg.collect(), [
    { name: "jobs.done", kind: "counter", points: [{ attributes: {}, value: 8 }] },
  ]);
  assert.equal(agg.dropped, 0);
});

test("Aggregator.merge() starts a name anew at once when no live worker reports its declaration", () => {
  const changes: string[] = [];
  const agg = new Aggregator({ onDeclaration: (c) => changes.push(c.outcome), now: () => 7 });
  agg.merge(1, [counter("jobs.done", 5)]);
  agg.removeWorker(1);
  agg.merge(2, [{ ...counter("jobs.done", 2), unit: "s" }]);
  assert.deepEqual(agg.collect(), [
    {
      name: "jobs.done",
      kind: "counter",
      unit: "s",
      startMs: 7,
      points: [{ attributes: {}, value: 2 }],
    },
  ]);
  assert.deepEqual(changes, ["replaced"]);
});

test("Aggregator.removeWorker() drops a pending gauge declaration with the only worker that reported it", () => {
  const agg = new Aggregator();
  agg.merge(1, [counter("app.level", 5)]);
  agg.merge(2, [gauge("app.level", 9)], 2);
  const bytes = agg.bytes;
  agg.removeWorker(2);
  assert.ok(agg.bytes < bytes);
  agg.removeWorker(1);
  assert.deepEqual(agg.collect(), [
    { name: "app.level", kind: "counter", points: [{ attributes: {}, value: 5 }] },
  ]);
});

test("Aggregator.removeWorker() drops a retired generation's gauges, and the newer generation's value wins meanwhile", () => {
  const agg = new Aggregator();
  const g = (value: number, attributes = {}): MetricDelta => ({
    name: "app.queue",
    kind: "gauge",
    points: [{ attributes, value }],
  });
  // Slot 1, generation 1 (key 10) and its replacement (key 11) during a roll.
  agg.merge(10, [g(5), g(1, { only: "old" })], 1);
  agg.merge(11, [g(9)], 1);
  const values = () => agg.collect()[0]?.points.map((p) => [p.attributes, p.value]);
  assert.deepEqual(values(), [[{ only: "old", worker: "1" }, 1], [{ worker: "1" }, 9]]);
  agg.removeWorker(10);
  assert.deepEqual(values(), [[{ worker: "1" }, 9]]);
  agg.removeWorker(11);
  assert.deepEqual(agg.collect(), []);
});

test("Aggregator.merge() sends series beyond the cardinality limit to the overflow series", () => {
  const agg = new Aggregator({ cardinalityLimit: 3 });
  const dropped = agg.merge(1, [{
    name: "app.hits",
    kind: "counter",
    points: [1, 2, 3, 4, 5].map((i) => ({ attributes: { user: `u${i}` }, value: i })),
  }]);
  assert.equal(dropped, 0);
  assert.equal(agg.dropped, 0);
  // A known series still goes to its own series once the limit is reached.
  agg.merge(2, [counter("app.hits", 10, { user: "u1" })]);
  assert.deepEqual(agg.collect()[0].points, [
    { attributes: { "otel.metric.overflow": true }, value: 3 + 4 + 5 },
    { attributes: { user: "u1" }, value: 11 },
    { attributes: { user: "u2" }, value: 2 },
  ]);
});

test("Aggregator.merge() merges a worker's own overflow series with the master's", () => {
  const agg = new Aggregator({ cardinalityLimit: 2 });
  agg.merge(1, [counter("app.hits", 1, { user: "a" }), counter("app.hits", 2, { user: "b" })]);
  agg.merge(2, [counter("app.hits", 5, { "otel.metric.overflow": true })]);
  assert.deepEqual(agg.collect()[0].points, [
    { attributes: { "otel.metric.overflow": true }, value: 7 },
    { attributes: { user: "a" }, value: 1 },
  ]);
});

test("Aggregator.merge() adds overflowed histogram points into one overflow series", () => {
  const agg = new Aggregator({ cardinalityLimit: 1 });
  agg.merge(1, [histogram([
    { attributes: { r: "a" }, count: 1, sum: 0.05, min: 0.05, max: 0.05, buckets: [1, 0, 0] },
    { attributes: { r: "b" }, count: 1, sum: 2, min: 2, max: 2, buckets: [0, 0, 1] },
  ])]);
  assert.deepEqual(agg.collect()[0].points, [{
    attributes: { "otel.metric.overflow": true },
    count: 2,
    sum: 2.05,
    min: 0.05,
    max: 2,
    buckets: [1, 0, 1],
  }]);
});

test("Aggregator.collect() sorts by name then attributes and returns a copy", () => {
  const agg = new Aggregator();
  agg.merge(1, [
    counter("b.metric", 1, { k: "z" }),
    counter("b.metric", 1, { k: "a" }),
    counter("a.metric", 1),
  ]);
  const first = agg.collect();
  assert.deepEqual(first.map((m) => m.name), ["a.metric", "b.metric"]);
  assert.deepEqual(first[1].points.map((p) => p.attributes.k), ["a", "z"]);
  first[0].points[0].value = 1000;
  first[1].points[0].attributes.k = "changed";
  assert.equal(valueOf(agg, "a.metric"), 1);
  assert.deepEqual(agg.collect()[1].points.map((p) => p.attributes.k), ["a", "z"]);
});

test("Aggregator.merge() drops malformed points and never throws", () => {
  const agg = new Aggregator();
  const bad = [
    { name: "x", kind: "counter", points: [{ attributes: {}, value: -1 }] },
    { name: "y", kind: "gauge", points: [{ attributes: {}, value: NaN }] },
    { name: "z", kind: "counter", points: [null] },
  ] as unknown as MetricDelta[];
  assert.equal(agg.merge(1, bad), 3);
  assert.equal(agg.dropped, 3);
  assert.deepEqual(agg.collect(), []);
});

test("Aggregator() rejects a cardinality limit below 1", () => {
  assert.throws(() => new Aggregator({ cardinalityLimit: 0 }), {
    name: "RangeError",
    message: "Cannot create the aggregator: cardinalityLimit must be a positive integer, got 0",
  });
});

test("Aggregator.merge() keeps points that carry the overflow flag beside other attributes under the cap", () => {
  const agg = new Aggregator({ cardinalityLimit: 3 });
  for (let i = 0; i < 50; i++) {
    agg.merge(1, [counter("app.hits", 1, { "otel.metric.overflow": true, i })]);
  }
  const [m] = agg.collect();
  assert.equal(m.points.length, 3, "the flag must not open a way past the cap");
  const total = m.points.reduce((n, p) => n + (p.value ?? 0), 0);
  assert.equal(total, 50, "nothing is lost: past the cap, points go to the overflow series");
});

test("Aggregator.merge() keeps at most instrumentLimit instruments and counts the rest as dropped", () => {
  const agg = new Aggregator({ instrumentLimit: 10 });
  let dropped = 0;
  for (let i = 0; i < 25; i++) dropped += agg.merge(1, [counter(`app.m${i}`, 1)]);
  assert.equal(agg.collect().length, 10);
  assert.equal(dropped, 15);
  assert.equal(agg.merge(1, [counter("app.m3", 1)]), 0, "a kept instrument still merges");
});

test("Aggregator.merge() gives no instrument slot to a metric without points or with only dropped ones", () => {
  const agg = new Aggregator({ instrumentLimit: 2 });
  const empty: HarvestMetric[] = Array.from({ length: 40_000 }, (_, i) => ({
    name: `empty.${i}`,
    kind: "counter",
    points: [],
  }));
  assert.equal(agg.merge(1, empty), 0);
  const unknownIds: HarvestMetric[] = Array.from({ length: 1000 }, (_, i) => ({
    name: `unknown.${i}`,
    kind: "counter",
    points: [],
    ids: [5],
    values: [1],
  }));
  assert.equal(agg.merge(1, unknownIds), 1000);
  assert.equal(agg.instruments, 0);
  assert.equal(agg.merge(2, [counter("app.real", 1), counter("app.other", 1)]), 0);
  assert.deepEqual(agg.collect().map((m) => m.name), ["app.other", "app.real"]);
});

test("Aggregator.removeWorker() gives back the slot of a gauge no live worker reports", () => {
  const agg = new Aggregator({ instrumentLimit: 1 });
  agg.merge(1, [gauge("app.queue", 1)]);
  assert.equal(agg.merge(2, [counter("app.hits", 1)]), 1, "the table is full");
  agg.removeWorker(1);
  assert.equal(agg.instruments, 0);
  assert.equal(agg.merge(2, [counter("app.hits", 1)]), 0);
  assert.equal(agg.rank("app.hits"), 1);
  assert.equal(agg.rank("app.queue"), undefined);
});

test("Aggregator.merge() resolves a worker's numbered series and forgets its ids with it", () => {
  const agg = new Aggregator();
  const numbered = (points: HarvestPoint[]): HarvestMetric[] => [
    { name: "app.hits", kind: "counter", points },
  ];
  assert.equal(agg.merge(1, numbered([{ id: 7, attributes: { route: "/a" }, value: 1 }])), 0);
  assert.equal(agg.merge(1, numbered([{ id: 7, value: 2 }])), 0);
  // Ids are each worker's own: worker 2's 7 is not worker 1's.
  assert.equal(agg.merge(2, numbered([{ id: 7, value: 100 }])), 1);
  assert.equal(agg.merge(2, numbered([{ id: 7, attributes: { route: "/b" }, value: 5 }])), 0);
  assert.equal(valueOf(agg, "app.hits", { route: "/a" }), 3);
  assert.equal(valueOf(agg, "app.hits", { route: "/b" }), 5);
  agg.removeWorker(1);
  assert.equal(agg.merge(1, numbered([{ id: 7, value: 1 }])), 1, "gone with its worker");
  assert.equal(valueOf(agg, "app.hits", { route: "/a" }), 3);
  assert.equal(agg.dropped, 2);
});

test("Aggregator.merge() resolves numbered gauges to the worker's own series", () => {
  const agg = new Aggregator();
  const g = (points: HarvestPoint[]): HarvestMetric[] => [{ name: "q", kind: "gauge", points }];
  agg.merge(1, g([{ id: 0, attributes: { pool: "x" }, value: 4 }]), 1);
  agg.merge(2, g([{ id: 0, attributes: { pool: "x" }, value: 6 }]), 2);
  agg.merge(1, g([{ id: 0, value: 5 }]), 1);
  assert.equal(valueOf(agg, "q", { pool: "x", worker: "1" }), 5);
  assert.equal(valueOf(agg, "q", { pool: "x", worker: "2" }), 6);
});

test("Aggregator.merge() adds the ids and values columns to the worker's numbered series", () => {
  const agg = new Aggregator();
  agg.merge(1, [{
    name: "hits",
    kind: "counter",
    points: [{ id: 0, attributes: { a: "x" }, value: 1 }],
  }]);
  agg.merge(2, [{
    name: "hits",
    kind: "counter",
    points: [{ id: 0, attributes: { a: "y" }, value: 1 }],
  }]);
  const dropped = agg.merge(1, [
    { name: "hits", kind: "counter", points: [], ids: [0, 0, 1, 0], values: [2, 3, 9, -1] },
  ]);
  assert.equal(dropped, 2, "an unknown id and a negative counter delta");
  agg.merge(2, [{ name: "hits", kind: "counter", points: [], ids: [0], values: [10] }]);
  assert.equal(valueOf(agg, "hits", { a: "x" }), 6);
  assert.equal(valueOf(agg, "hits", { a: "y" }), 11);
  const g = (w: number, ids: number[], values: number[], points: HarvestPoint[] = []) =>
    agg.merge(w, [{ name: "q", kind: "gauge", points, ids, values }], w);
  g(1, [], [], [{ id: 5, attributes: { pool: "p" }, value: 1 }]);
  g(1, [5], [7]);
  assert.equal(valueOf(agg, "q", { pool: "p", worker: "1" }), 7);
  agg.removeWorker(1);
  assert.equal(g(1, [5], [8]), 1, "its series and ids went with it");
  assert.equal(agg.collect().find((m) => m.name === "q"), undefined);
});

test("Aggregator.merge() drops and counts new series beyond the memory limit and keeps merging those it holds", () => {
  const agg = new Aggregator({ memoryLimit: 200_000 });
  const wide = (i: number) => ({ k: `${i}`.padEnd(1000, "x") });
  const h = (attributes: Record<string, string>): HarvestMetric => ({
    name: "app.took",
    kind: "histogram",
    boundaries: Array.from({ length: 50 }, (_, i) => i),
    points: [{ attributes, count: 1, sum: 1, buckets: [1, ...new Array(50).fill(0)] }],
  });
  let held = 0;
  for (let i = 0; i < 100; i++) if (agg.merge(1, [h(wide(i))]) === 0) held++;
  assert.ok(held > 0 && held < 100, `${held} series held`);
  assert.ok(agg.bytes <= 200_000, `${agg.bytes} bytes`);
  assert.equal(agg.drops.memory_limit, 100 - held);
  assert.equal(agg.drops.invalid, 0);
  // Held series still take points; new ones, numbered or not, still do not.
  assert.equal(agg.merge(2, [h(wide(0))]), 0);
  assert.equal(agg.collect()[0].points.find((p) => p.attributes.k === wide(0).k)?.count, 2);
  assert.equal(
    agg.merge(2, [{
      name: "app.new",
      kind: "gauge",
      points: [{ id: 1, attributes: { k: "x".repeat(100_000) }, value: 1 }],
    }]),
    1,
  );
  assert.equal(
    agg.merge(2, [{ name: "app.new", kind: "gauge", points: [], ids: [1], values: [1] }]),
    1,
  );
  assert.equal(agg.drops.memory_limit, 101 - held);
  assert.equal(agg.drops.invalid, 1, "an id whose definition did not fit is unknown");
});

test("Aggregator.removeWorker() gives back the memory of a gone worker's gauges, ids and up-down parts", () => {
  const agg = new Aggregator();
  agg.merge(1, [{
    name: "app.c",
    kind: "counter",
    points: [{ attributes: { a: "1" }, value: 1 }],
  }]);
  const base = agg.bytes;
  agg.merge(2, [
    {
      name: "app.q",
      kind: "gauge",
      points: [{ id: 3, attributes: { a: "x".repeat(500) }, value: 1 }],
    },
    { name: "app.c", kind: "counter", points: [{ id: 4, attributes: { a: "1" }, value: 1 }] },
    { name: "app.u", kind: "updown", points: [{ attributes: {}, value: 1 }] },
  ]);
  const updown = agg.bytes;
  assert.ok(updown > base + 1000);
  agg.removeWorker(2);
  // The up-down counter series stays (at 0); what worker 2 held goes.
  assert.ok(agg.bytes < updown && agg.bytes > base, `${base} < ${agg.bytes} < ${updown}`);
  agg.merge(3, [{ name: "app.u", kind: "updown", points: [{ attributes: {}, value: 1 }] }]);
  agg.removeWorker(3);
  const after = agg.bytes;
  agg.merge(4, [{ name: "app.u", kind: "updown", points: [{ attributes: {}, value: 1 }] }]);
  agg.removeWorker(4);
  assert.equal(agg.bytes, after, "no leak per worker");
});

test("Aggregator.merge() drops what the harvest validator refuses", async () => {
  const { parseWorkerMessage } = await import("../../src/protocol/messages.ts");
  const h = (boundaries: unknown[], point: Record<string, unknown>, extra = {}) => ({
    name: "h",
    kind: "histogram",
    boundaries,
    points: [{ attributes: {}, ...point }],
    ...extra,
  });
  const good = { count: 1, sum: 1, buckets: [0, 1] };
  const refused = [
    h([1], { count: 2, sum: 1, buckets: [0, 1] }), // buckets do not add up to the count
    h([2, 1], { ...good, buckets: [0, 1, 0] }), // descending boundaries
    h(Array.from({ length: 201 }, (_, i) => i), { count: 0, sum: 0, buckets: Array(202).fill(0) }),
    h([1], good, { unit: "u".repeat(64) }),
    h([1], good, { description: "d".repeat(1024) }),
    { name: "x".repeat(256), kind: "counter", points: [{ attributes: {}, value: 1 }] },
    { name: "c", kind: "sum", points: [{ attributes: {}, value: 1 }] },
  ];
  for (const metric of refused) {
    const parsed = parseWorkerMessage({ type: "harvest", v: 1, seq: 1, metrics: [metric] });
    assert.ok(parsed.ok && parsed.message.type === "harvest");
    assert.equal(parsed.message.refused, 1, JSON.stringify(metric).slice(0, 80));
    const agg = new Aggregator();
    assert.equal(agg.merge(1, [metric as HarvestMetric]), 1, JSON.stringify(metric).slice(0, 80));
    assert.deepEqual(agg.collect(), []);
  }
});

test("Aggregator.merge() keeps the series ids of each isolate of a worker apart", () => {
  const agg = new Aggregator();
  const define = (route: string): HarvestMetric[] => [
    { name: "app.hits", kind: "counter", points: [{ id: 0, attributes: { route }, value: 1 }] },
  ];
  const byId = (value: number): HarvestMetric[] => [
    { name: "app.hits", kind: "counter", points: [], ids: [0], values: [value] },
  ];
  assert.equal(agg.merge(1, define("/a"), 1, 0), 0);
  assert.equal(agg.merge(1, define("/b"), 1, 1), 0);
  assert.equal(agg.merge(1, byId(10), 1, 0), 0);
  assert.equal(agg.merge(1, byId(100), 1, 1), 0);
  assert.equal(valueOf(agg, "app.hits", { route: "/a" }), 11);
  assert.equal(valueOf(agg, "app.hits", { route: "/b" }), 101);
  // The worker gone, its isolates' ids go with it: a point by id alone is refused.
  agg.removeWorker(1);
  assert.equal(agg.merge(1, byId(5), 1, 1), 1);
});

test("Aggregator.collect() shows series that came or went since the last scrape, in order", () => {
  const agg = new Aggregator();
  const keys = (name: string) =>
    agg.collect(name)[0]?.points.map((p) => String(p.attributes.k)) ?? [];
  agg.merge(1, [{ name: "c", kind: "counter", points: [{ attributes: { k: "m" }, value: 1 }] }]);
  agg.merge(1, [{ name: "g", kind: "gauge", points: [{ attributes: { k: "m" }, value: 1 }] }]);
  assert.deepEqual(keys("c"), ["m"]);
  assert.deepEqual(keys("g"), ["m"]);
  agg.merge(1, [{ name: "c", kind: "counter", points: [{ attributes: { k: "a" }, value: 1 }] }]);
  agg.merge(2, [{ name: "g", kind: "gauge", points: [{ attributes: { k: "z" }, value: 1 }] }]);
  assert.deepEqual(keys("c"), ["a", "m"]);
  assert.deepEqual(keys("g"), ["m", "z"]);
  agg.removeWorker(1);
  agg.merge(3, [{ name: "g", kind: "gauge", points: [{ attributes: { k: "b" }, value: 1 }] }]);
  assert.deepEqual(keys("g"), ["b", "z"]);
  assert.deepEqual(keys("c"), ["a", "m"]);
});
