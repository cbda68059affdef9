import { test } from "node:test";
import assert from "node:assert/strict";
import { canonicalAttributes } from "../../src/protocol/attributes.ts";
import { type Cut, INSTRUMENT_LIMIT, mergeCuts, Storage } from "../../src/reporter/storage.ts";
import { SeriesTable } from "../../src/reporter/series_table.ts";
import { splitMetrics } from "../../src/reporter/delivery.ts";
import {
  BucketFinder,
  Counter,
  DEFAULT_BOUNDARIES,
  Gauge,
  Histogram,
  HTTP_DURATION_BOUNDARIES,
  UpDownCounter,
} from "../../src/reporter/instruments.ts";

function points(cut: Cut, name: string) {
  return cut.metrics.find((m) => m.name === name)?.points ?? [];
}

test("SeriesTable.get() returns one series whatever the key order", () => {
  const table = new SeriesTable(0);
  const a = table.get({ a: "x", b: 1 });
  const b = table.get({ b: 1, a: "x" });
  assert.equal(a, b);
  assert.deepEqual(Object.keys(a.attributes), ["a", "b"]);
  assert.equal(table.size, 1);
});

test("SeriesTable.get() tells values of different types apart", () => {
  const table = new SeriesTable(0);
  assert.notEqual(table.get({ code: 200 }), table.get({ code: "200" }));
});

test("SeriesTable.get() finds the right series as values alternate, repeat and change type", () => {
  // Each trie node remembers its last step: every combination below must
  // still land on its own series, whichever was seen just before.
  const table = new SeriesTable(0);
  const combos: Record<string, unknown>[] = [
    { method: "GET", status: 200 },
    { method: "POST", status: 200 },
    { method: "GET", status: 404 },
    { method: "GET", status: "200" },
    { method: "GET", status: NaN },
    { method: "GET", status: -0 },
    { method: "GET" },
    { status: 200, method: "GET" },
    { method: "GET", status: 200, route: "/a" },
    { method: "GET", status: undefined },
  ];
  const first = combos.map((c) => table.get(c));
  let seed = 7;
  for (let i = 0; i < 500; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const k = seed % combos.length;
    for (let j = 0; j < seed % 3 + 1; j++) assert.equal(table.get({ ...combos[k] }), first[k]);
  }
  assert.equal(first[7], first[0], "key order does not matter");
  assert.equal(first[9], first[6], "an undefined value is no attribute");
  assert.equal(table.get({ method: "GET", status: 0 }), first[5], "0 and -0 are one value");
  assert.notEqual(first[3], first[0], '"200" is not 200');
  assert.equal(table.size, 8);
});

test("SeriesTable.get() sends series past the limit to one overflow series, counted in it", () => {
  const table = new SeriesTable(0, 4);
  for (let i = 0; i < 3; i++) table.get({ user: `u${i}` });
  const over1 = table.get({ user: "u3" });
  const over2 = table.get({ user: "u4", extra: true });
  assert.equal(over1, over2);
  assert.deepEqual(over1.attributes, { "otel.metric.overflow": true });
  assert.equal(table.size, 4);
  // Series created before the limit still get their own points.
  assert.deepEqual(table.get({ user: "u1" }).attributes, { user: "u1" });
});

test("canonicalAttributes() drops undefined and null and stringifies objects", () => {
  const { attributes } = canonicalAttributes({ z: undefined, y: null, x: [1, 2], w: NaN });
  assert.deepEqual(attributes, { w: "NaN", x: "[1,2]" });
});

test("Storage.cut() returns deltas and resets them", () => {
  const storage = new Storage();
  const hits = new Counter(storage, "hits");
  hits.add(2, { a: "x", b: "y" });
  hits.add(3, { b: "y", a: "x" });
  let cut = storage.cut();
  assert.deepEqual(points(cut, "hits"), [{ attributes: { a: "x", b: "y" }, value: 5 }]);
  hits.add(1, { a: "x", b: "y" });
  cut = storage.cut();
  assert.deepEqual(points(cut, "hits"), [{ attributes: { a: "x", b: "y" }, value: 1 }]);
  assert.deepEqual(storage.cut().metrics, []);
});

test("counter() drops a NaN value and counts it", () => {
  const storage = new Storage();
  const hits = new Counter(storage, "hits");
  hits.add(NaN);
  hits.add(Infinity);
  hits.add(-1);
  hits.add("3" as unknown as number);
  hits.add(1);
  const cut = storage.cut();
  assert.equal(cut.dropped, 4);
  assert.deepEqual(points(cut, "hits"), [{ attributes: {}, value: 1 }]);
  assert.equal(storage.cut().dropped, 0);
});

test("UpDownCounter.add() accepts negative values and drops non-finite ones", () => {
  const storage = new Storage();
  const open = new UpDownCounter(storage, "open");
  open.add(3);
  open.add(-5);
  open.add(-Infinity);
  const cut = storage.cut();
  assert.deepEqual(points(cut, "open"), [{ attributes: {}, value: -2 }]);
  assert.equal(cut.dropped, 1);
});

test("Gauge.record() keeps the last value and reports only changed series", () => {
  const storage = new Storage();
  const g = new Gauge(storage, "queue");
  g.record(3, { q: "a" });
  g.record(7, { q: "a" });
  g.record(1, { q: "b" });
  assert.deepEqual(points(storage.cut(), "queue"), [
    { attributes: { q: "a" }, value: 7 },
    { attributes: { q: "b" }, value: 1 },
  ]);
  g.record(9, { q: "b" });
  assert.deepEqual(points(storage.cut(), "queue"), [{ attributes: { q: "b" }, value: 9 }]);
});

test("Histogram.record() fills non-cumulative buckets, inclusive upper bounds", () => {
  const storage = new Storage();
  const h = new Histogram(storage, "lat", { unit: "s", boundaries: [1, 2, 5] });
  for (const v of [0, 1, 1.5, 2, 4, 5, 6, 100]) h.record(v);
  h.record(-1);
  const cut = storage.cut();
  const metric = cut.metrics[0];
  assert.equal(metric.kind, "histogram");
  assert.equal(metric.unit, "s");
  assert.deepEqual(metric.boundaries, [1, 2, 5]);
  assert.deepEqual(metric.points, [{
    attributes: {},
    count: 8,
    sum: 119.5,
    min: 0,
    max: 100,
    buckets: [2, 2, 2, 2],
  }]);
  assert.equal(cut.dropped, 1);
});

test("Histogram.record() drops Infinity and keeps -0 in the first bucket", () => {
  const storage = new Storage();
  const h = new Histogram(storage, "lat", { boundaries: [0, 1] });
  h.record(Infinity);
  h.record(-0);
  h.record(Number.MIN_VALUE);
  const cut = storage.cut();
  assert.equal(cut.dropped, 1);
  assert.deepEqual(cut.metrics[0].points[0].buckets, [1, 1, 0]);
  assert.equal(cut.metrics[0].points[0].count, 2);
});

test("Histogram.record() and Counter.add() create no series for a dropped value", () => {
  const storage = new Storage();
  const table = storage.register({ name: "lat", kind: "histogram", boundaries: [1] }).table;
  const h = new Histogram(storage, "lat", { boundaries: [1] });
  const c = new Counter(storage, "hits");
  for (const bad of [Infinity, -1, NaN]) {
    h.record(bad, { user: String(bad) });
    c.add(bad, { user: String(bad) });
  }
  assert.equal(table.size, 0);
  assert.equal(storage.cut().dropped, 6);
});

test("BucketFinder.index() counts the boundaries below a value, whatever the boundaries", () => {
  const below = (bounds: number[], x: number) => bounds.filter((b) => b < x).length;
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const sets: number[][] = [
    [],
    [0],
    [-5],
    [-5, 0, 5],
    [1],
    [...DEFAULT_BOUNDARIES],
    [...HTTP_DURATION_BOUNDARIES],
    [Number.MIN_VALUE, 1e-310, 1],
    [1e-300, 1e300],
    [Number.MAX_VALUE],
    [1, 1 + Number.EPSILON, 1 + 2 * Number.EPSILON, 2],
    Array.from({ length: 3000 }, (_, i) => (i - 100) / 7),
  ];
  for (let k = 0; k < 60; k++) {
    const scale = 10 ** Math.floor(random() * 40 - 20);
    const s = new Set(
      Array.from({ length: Math.floor(random() * 30) }, () => (random() - 0.2) * scale),
    );
    sets.push([...s].sort((a, b) => a - b));
  }
  const bits = new Float64Array(1);
  const word = new BigUint64Array(bits.buffer);
  for (const bounds of sets) {
    const finder = new BucketFinder(bounds);
    const values = [0, -0, Number.MIN_VALUE, Number.MAX_VALUE, 0.5, 1, 3, 1e-300, 1e300];
    for (const b of bounds) {
      if (b <= 0) continue;
      // The boundary and the doubles right next to it.
      bits[0] = b;
      const at = word[0];
      for (const d of [-2n, -1n, 0n, 1n, 2n]) {
        word[0] = at + d;
        values.push(bits[0]);
      }
      values.push(b / 2, b * 2);
    }
    const top = Math.abs(bounds.at(-1) ?? 1);
    for (let i = 0; i < 300; i++) values.push(random() ** 3 * top * 2);
    for (const v of values) {
      if (!Number.isFinite(v)) continue; // past the largest double: never passed in
      assert.equal(finder.index(v), below(bounds, v), `${v} among ${bounds.slice(0, 5)}…`);
    }
  }
});

test("Histogram.bind() records into the series Histogram.record() uses, and drops alike", () => {
  const storage = new Storage();
  const h = new Histogram(storage, "lat", { boundaries: [1, 2] });
  const bound = h.bind({ route: "/a" });
  h.record(0.5, { route: "/a" });
  bound.record(1.5);
  bound.record(3);
  bound.record(-1);
  bound.record(NaN);
  bound.record(Infinity);
  const cut = storage.cut();
  assert.equal(cut.dropped, 3);
  assert.deepEqual(points(cut, "lat"), [
    { attributes: { route: "/a" }, count: 3, sum: 5, min: 0.5, max: 3, buckets: [1, 1, 1] },
  ]);
});

test("Histogram.bind() past the instrument limit drops every recording", () => {
  const storage = new Storage();
  for (let i = 0; i < INSTRUMENT_LIMIT; i++) new Counter(storage, `m${i}`);
  const bound = new Histogram(storage, "one.too.many").bind({ a: 1 });
  bound.record(1);
  bound.record(2);
  assert.equal(storage.cut().dropped, 2);
});

test("Histogram.record() finds the bucket on long boundary lists", () => {
  const storage = new Storage();
  const boundaries = Array.from({ length: 40 }, (_, i) => i + 1);
  const h = new Histogram(storage, "long", { boundaries });
  h.record(0.5);
  h.record(17);
  h.record(17.5);
  h.record(99);
  const buckets = storage.cut().metrics[0].points[0].buckets!;
  assert.equal(buckets.length, 41);
  assert.equal(buckets[0], 1);
  assert.equal(buckets[16], 1);
  assert.equal(buckets[17], 1);
  assert.equal(buckets[40], 1);
});

test("Histogram() rejects unordered boundaries", () => {
  assert.throws(
    () => new Histogram(new Storage(), "bad", { boundaries: [1, 1] }),
    new RangeError(
      'Cannot create histogram "bad": boundaries must be strictly ascending, got 1 after 1',
    ),
  );
});

test("canonicalAttributes() keeps attribute names taken from Object.prototype as attributes", () => {
  const raw = JSON.parse('{"__proto__":"p","constructor":"c","toString":1,"hasOwnProperty":true}');
  const { attributes, key } = canonicalAttributes(raw);
  assert.deepEqual(Object.keys(attributes).sort(), [
    "__proto__",
    "constructor",
    "hasOwnProperty",
    "toString",
  ]);
  assert.equal(Object.getPrototypeOf(attributes), Object.prototype);
  assert.match(key, /"__proto__":"p"/);
  const storage = new Storage();
  new Counter(storage, "c").add(1, raw);
  assert.deepEqual(storage.cut().metrics[0].points[0].attributes, attributes);
});

test("Histogram() and Counter() refuse a unit, description or boundaries the master would refuse", () => {
  assert.throws(
    () => new Counter(new Storage(), "c", { unit: "u".repeat(64) }),
    new RangeError('Cannot create instrument "c": unit must be at most 63 characters, got 64'),
  );
  assert.throws(
    () => new Counter(new Storage(), "c", { description: "d".repeat(1024) }),
    new RangeError(
      'Cannot create instrument "c": description must be at most 1023 characters, got 1024',
    ),
  );
  assert.throws(
    () =>
      new Histogram(new Storage(), "h", { boundaries: Array.from({ length: 201 }, (_, i) => i) }),
    new RangeError('Cannot create histogram "h": at most 200 boundaries, got 201'),
  );
  new Histogram(new Storage(), "h", {
    unit: "u".repeat(63),
    description: "d".repeat(1023),
    boundaries: Array.from({ length: 200 }, (_, i) => i),
  });
});

test("Histogram() without boundaries takes OpenTelemetry's defaults, or the duration buckets for seconds", () => {
  const storage = new Storage();
  new Histogram(storage, "plain").record(30);
  new Histogram(storage, "took", { unit: "s" }).record(0.03);
  const [plain, took] = storage.cut().metrics;
  assert.deepEqual(plain.boundaries, [
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
  assert.equal(plain.points[0].buckets![4], 1, "30 goes in (25, 50]");
  assert.deepEqual(took.boundaries, [...HTTP_DURATION_BOUNDARIES]);
  assert.equal(took.points[0].buckets![3], 1, "0.03 goes in (0.025, 0.05]");
});

test("Storage.register() refuses one name for two kinds", () => {
  const storage = new Storage();
  new Counter(storage, "x");
  assert.throws(() => new Gauge(storage, "x"), TypeError);
  assert.doesNotThrow(() => new Counter(storage, "x"));
});

test("Counter.add() never throws on hostile attributes", () => {
  const storage = new Storage();
  const hits = new Counter(storage, "hits");
  const hostile = new Proxy({}, {
    ownKeys() {
      throw new Error("boom");
    },
  });
  hits.add(1, hostile);
  assert.equal(storage.cut().dropped, 1);
});

test("Storage.wake() runs the lazy start once, on the first recording", () => {
  const storage = new Storage();
  let wakes = 0;
  storage.onWake = () => wakes++;
  const hits = new Counter(storage, "hits");
  assert.equal(wakes, 0);
  hits.add(1);
  hits.add(1);
  assert.equal(wakes, 1);
});

test("Storage.wake() runs once, on a bound histogram's first recording, not on bind()", () => {
  const storage = new Storage();
  let wakes = 0;
  storage.onWake = () => wakes++;
  const took = new Histogram(storage, "took", { boundaries: [1] });
  const bound = took.bind({ job: "a" });
  assert.equal(wakes, 0, "making and binding an instrument record nothing");
  bound.record(2);
  assert.equal(wakes, 1);
  took.record(0.5, { job: "a" });
  bound.record(2);
  assert.equal(wakes, 1);
  assert.equal(storage.cut().metrics[0].points[0].count, 3);
});

test("SeriesTable() calls onInsert for each attribute set seen first, not for a known one", () => {
  let inserts = 0;
  const table = new SeriesTable(0, 10, () => inserts++);
  table.get({ a: 1 });
  table.get({ a: 1 });
  table.get({ a: 2 });
  table.get({ a: 2 });
  assert.equal(inserts, 2);
});

test("mergeCuts() adds counters and histograms and keeps the later gauge", () => {
  const earlier: Cut = {
    dropped: 1,
    metrics: [
      { name: "c", kind: "counter", points: [{ attributes: { a: 1 }, value: 2 }] },
      { name: "g", kind: "gauge", points: [{ attributes: {}, value: 5 }] },
      {
        name: "h",
        kind: "histogram",
        boundaries: [1],
        points: [{ attributes: {}, count: 1, sum: 0.5, min: 0.5, max: 0.5, buckets: [1, 0] }],
      },
    ],
  };
  const later: Cut = {
    dropped: 2,
    metrics: [
      { name: "c", kind: "counter", points: [{ attributes: { a: 1 }, value: 3 }] },
      { name: "c2", kind: "counter", points: [{ attributes: {}, value: 1 }] },
      { name: "g", kind: "gauge", points: [{ attributes: {}, value: 9 }] },
      {
        name: "h",
        kind: "histogram",
        boundaries: [1],
        points: [{ attributes: {}, count: 2, sum: 4, min: 2, max: 2, buckets: [0, 2] }],
      },
    ],
  };
  const merged = mergeCuts(earlier, later);
  assert.equal(merged.dropped, 3);
  assert.deepEqual(points(merged, "c"), [{ attributes: { a: 1 }, value: 5 }]);
  assert.deepEqual(points(merged, "c2"), [{ attributes: {}, value: 1 }]);
  assert.deepEqual(points(merged, "g"), [{ attributes: {}, value: 9 }]);
  assert.deepEqual(points(merged, "h"), [
    { attributes: {}, count: 3, sum: 4.5, min: 0.5, max: 2, buckets: [1, 2] },
  ]);
  assert.equal(earlier.metrics[0].points[0].value, 2);
});

test("Counter.add() drops an add that would carry the sum past the largest double, and keeps the sum", () => {
  const storage = new Storage();
  const c = new Counter(storage, "big");
  const h = new Histogram(storage, "big.h", { boundaries: [1] });
  c.add(Number.MAX_VALUE);
  c.add(Number.MAX_VALUE);
  h.record(Number.MAX_VALUE);
  h.record(Number.MAX_VALUE);
  const cut = storage.cut();
  assert.equal(cut.dropped, 2);
  assert.equal(cut.metrics.find((m) => m.name === "big")!.points[0].value, Number.MAX_VALUE);
  const hp = cut.metrics.find((m) => m.name === "big.h")!.points[0];
  assert.deepEqual([hp.count, hp.sum], [1, Number.MAX_VALUE]);
});

test("Storage.register() keeps INSTRUMENT_LIMIT instruments; recordings on more are counted as dropped", () => {
  const storage = new Storage();
  for (let i = 0; i < INSTRUMENT_LIMIT + 20; i++) new Counter(storage, `m${i}`).add(1);
  const cut = storage.cut();
  assert.equal(cut.metrics.length, INSTRUMENT_LIMIT);
  assert.equal(cut.dropped, 20);
});

test("splitMetrics() counts the ids and values columns and splits them too", () => {
  const points = [{ id: 9, attributes: { a: 1 }, value: 1 }];
  const groups = splitMetrics(
    [{ name: "x", kind: "counter", points, ids: [1, 2, 3, 4], values: [1, 2, 3, 4] }],
    2,
  );
  assert.deepEqual(groups, [
    [{ name: "x", kind: "counter", points, ids: [1], values: [1] }],
    [{ name: "x", kind: "counter", points: [], ids: [2, 3], values: [2, 3] }],
    [{ name: "x", kind: "counter", points: [], ids: [4], values: [4] }],
  ]);
});

test("Storage.harvestCut() numbers series and sends known ones as columns after acknowledge()", () => {
  const storage = new Storage();
  const { table } = storage.register({ name: "hits", kind: "counter" });
  const hist = storage.register({ name: "h", kind: "histogram", boundaries: [1] }).table;
  const add = () => {
    const s = table.get({ a: 1 });
    s.value += 1;
    s.dirty = true;
    hist.get(undefined).observe(0.5, 0);
  };
  add();
  const first = storage.harvestCut();
  assert.deepEqual(first.metrics[0].points, [{ id: 0, attributes: { a: 1 }, value: 1 }]);
  add();
  assert.equal(storage.harvestCut().metrics[0].ids, undefined, "cut 1 is not acknowledged yet");
  storage.acknowledge(first.number);
  add();
  const third = storage.harvestCut();
  assert.deepEqual(third.metrics[0], {
    name: "hits",
    kind: "counter",
    points: [],
    ids: [0],
    values: [1],
  });
  assert.deepEqual(third.metrics[1].points[0].id, 1);
  assert.equal(third.metrics[1].points[0].attributes, undefined, "a histogram by id, as a point");
  assert.equal(storage.cut().metrics.length, 0);
});

test("Counter.add() and Histogram.record() read the attributes at each call: an object changed after a call names another series", () => {
  const storage = new Storage();
  const hits = new Counter(storage, "app.hits");
  const took = new Histogram(storage, "app.took", { unit: "s" });
  const attrs: Record<string, unknown> = { a: "x", b: "y" };
  for (let i = 0; i < 3; i++) {
    hits.add(1, attrs);
    took.record(0.002, attrs);
  }
  attrs.a = "z";
  hits.add(10, attrs);
  took.record(0.02, attrs);
  attrs.c = 1;
  hits.add(100, attrs);
  took.record(0.2, attrs);
  delete attrs.c;
  attrs.a = "x";
  hits.add(1000, attrs);
  took.record(2, attrs);
  const cut = storage.cut();
  assert.deepEqual(
    points(cut, "app.hits").map((p) => [p.attributes, p.value]),
    [[{ a: "x", b: "y" }, 1003], [{ a: "z", b: "y" }, 10], [{ a: "z", b: "y", c: 1 }, 100]],
  );
  assert.deepEqual(
    points(cut, "app.took").map((p) => [p.attributes, p.count, p.sum]),
    [[{ a: "x", b: "y" }, 4, 2.006], [{ a: "z", b: "y" }, 1, 0.02], [
      { a: "z", b: "y", c: 1 },
      1,
      0.2,
    ]],
  );
  // The series keep the attributes they were created with, not the caller's object.
  attrs.a = "w";
  assert.deepEqual(storage.cut().metrics.length, 0);
  hits.add(1, { a: "x", b: "y" });
  assert.deepEqual(points(storage.cut(), "app.hits")[0].attributes, { a: "x", b: "y" });
});
