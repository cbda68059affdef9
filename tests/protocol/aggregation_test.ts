import { test } from "node:test";
import assert from "node:assert/strict";
import { aggregationOf } from "../../src/protocol/aggregation.ts";
import { Aggregator } from "../../src/export/aggregator.ts";
import { OtlpBatcher } from "../../src/export/otlp_batch.ts";
import { type Cut, mergeCuts, Storage } from "../../src/reporter/storage.ts";
import { Counter, Histogram } from "../../src/reporter/instruments.ts";
import type { OtlpHistogramPoint, OtlpNumberPoint } from "../../src/protocol/otlp.ts";

/** A small deterministic generator, so a failure replays. */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1_103_515_245 + 12_345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

test("aggregationOf() merges, diffs and resets each kind", () => {
  const sum = aggregationOf("counter");
  assert.deepEqual(sum.merge({ value: 0.1 }, { value: 0.2 }), { value: 0.1 + 0.2 });
  assert.deepEqual(sum.diff(undefined, { value: 4 }), { value: 4 });
  assert.deepEqual(sum.diff({ value: 9 }, { value: 4 }), { value: 4 });
  const updown = aggregationOf("updown");
  assert.deepEqual(updown.merge({ value: 3 }, { value: -5 }), { value: -2 });
  const gauge = aggregationOf("gauge");
  assert.deepEqual(gauge.merge({ value: 3 }, { value: -5 }), { value: -5 });
  const g = { value: 7 };
  gauge.reset(g);
  assert.equal(g.value, 7);
  const h = aggregationOf("histogram");
  const acc = { count: 2, sum: 3, min: 1, max: 2, buckets: [1, 1] };
  h.reset(acc);
  assert.deepEqual(acc, { count: 0, sum: 0, min: Infinity, max: -Infinity, buckets: [0, 0] });
  assert.deepEqual(h.copy(acc), { count: 0, sum: 0, buckets: [0, 0] });
  // Buckets that went back, or changed in number: the series started over.
  const now = { count: 1, sum: 1, buckets: [0, 1] };
  assert.deepEqual(h.diff({ count: 1, sum: 1, buckets: [1, 0] }, now), now);
  assert.deepEqual(h.diff({ count: 0, sum: 0, buckets: [0] }, now), now);
  assert.deepEqual(
    h.merge({ count: 1, sum: 1, buckets: [0, 1] }, { count: 0, sum: 0, buckets: [0, 0] }),
    {
      count: 1,
      sum: 1,
      buckets: [0, 1],
    },
  );
});

test("aggregationOf() validates points and column values by kind", () => {
  assert.equal(aggregationOf("counter").validateValue(-1), "counter delta must not be negative");
  assert.equal(aggregationOf("updown").validateValue(-1), undefined);
  assert.equal(aggregationOf("gauge").validateValue(NaN), "value must be a finite number");
  const h = aggregationOf("histogram");
  assert.equal(h.validate({ count: 1, sum: 1, buckets: [0, 1] }, 2), undefined);
  assert.equal(
    h.validate({ count: 1, sum: 1, buckets: [0, 1] }, 3),
    "histogram buckets must be 3 non-negative integers",
  );
  assert.equal(
    h.validate({ count: 1, sum: Infinity, buckets: [1] }, 1),
    "histogram sum must be a finite number",
  );
});

test("aggregationOf() gives the reporter, the master and the OTLP batcher one exact total", () => {
  // Values whose float sums depend on the order of additions: every stage
  // must add in the same order (interval by interval) to agree to the bit.
  const next = random(7);
  const storage = new Storage();
  const hits = new Counter(storage, "app.hits");
  const took = new Histogram(storage, "app.took", { unit: "s", boundaries: [0.1, 1] });
  const agg = new Aggregator();
  const batcher = new OtlpBatcher({
    temporality: "delta",
    startMs: 0,
    resource: () => ({}),
    scope: { name: "forklift", version: "0" },
  });
  let merged: Cut = { metrics: [], dropped: 0 };
  let exportedHits = 0;
  let exportedSum = 0;
  let exportedCount = 0;
  const exportedBuckets = [0, 0, 0];
  let recordedHits = 0;
  for (let interval = 0; interval < 40; interval++) {
    for (let i = 0; i < 25; i++) {
      const v = next() * 3;
      hits.add(v, { route: i % 2 === 0 ? "/a" : "/b" });
      if (i % 2 === 0) recordedHits += v;
      took.record(next() * 2, { route: "/a" });
    }
    const cut = storage.cut();
    merged = mergeCuts(merged, cut);
    agg.merge(1 + (interval % 3), cut.metrics);
    const { batch, commit } = batcher.build(agg.collect(), 1000 * (interval + 1));
    commit();
    for (const m of batch.metrics) {
      for (const p of m.points) {
        if (p.attributes.route !== "/a") continue;
        if (m.type === "histogram") {
          const hp = p as OtlpHistogramPoint;
          exportedSum += hp.sum;
          exportedCount += hp.count;
          hp.bucketCounts.forEach((c, i) => exportedBuckets[i] += c);
        } else exportedHits += (p as OtlpNumberPoint).value;
      }
    }
  }
  const byName = (ms: Cut["metrics"], name: string) =>
    ms.find((m) => m.name === name)!.points.find((p) => p.attributes.route === "/a")!;
  const state = agg.collect();
  assert.equal(byName(merged.metrics, "app.hits").value, byName(state, "app.hits").value);
  assert.deepEqual(byName(merged.metrics, "app.took"), byName(state, "app.took"));
  const total = byName(state, "app.took");
  assert.equal(total.count, 1000);
  assert.deepEqual([exportedCount, exportedBuckets], [total.count, total.buckets]);
  // Deltas are taken off running totals: adding them back is exact only up to rounding.
  assert.ok(Math.abs(exportedSum - total.sum!) < 1e-9);
  assert.ok(Math.abs(exportedHits - byName(state, "app.hits").value!) < 1e-9);
  assert.ok(Math.abs(recordedHits - byName(state, "app.hits").value!) < 1e-9);
});
