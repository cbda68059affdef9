import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  DashboardHistory,
  EVENT_TEXT_MAX,
  histogramQuantile,
  HISTORY_BYTES,
  HISTORY_SECONDS,
  HISTORY_SLOTS,
  httpTotals,
  type MasterSample,
  sinceParam,
  TIMELINE_EVENTS,
  WINDOW_MAX_SECONDS,
} from "../../src/export/dashboard.ts";

const MiB = 1024 * 1024;
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

describe("histogramQuantile()", () => {
  test("histogramQuantile() interpolates inside the bucket the rank falls in, as Prometheus does", () => {
    const bounds = [0.1, 0.5, 1];
    const counts = [10, 10, 0, 0];
    close(histogramQuantile(0.5, bounds, counts), 0.1);
    close(histogramQuantile(0.75, bounds, counts), 0.3);
    close(histogramQuantile(0.99, bounds, counts), 0.492);
    close(histogramQuantile(0.25, bounds, counts), 0.05);
  });

  test("histogramQuantile() answers the highest finite bound when the rank is in the +Inf bucket", () => {
    assert.equal(histogramQuantile(0.5, [0.1, 0.5, 1], [0, 0, 0, 5]), 1);
    assert.equal(histogramQuantile(0.99, [0.1, 0.5, 1], [99, 0, 0, 2]), 1);
  });

  test("histogramQuantile() answers NaN with no observation and ±Inf outside [0, 1]", () => {
    assert.ok(Number.isNaN(histogramQuantile(0.5, [0.1], [0, 0])));
    assert.ok(Number.isNaN(histogramQuantile(0.5, [], [3])));
    assert.equal(histogramQuantile(-0.1, [0.1], [1, 0]), -Infinity);
    assert.equal(histogramQuantile(1.1, [0.1], [1, 0]), Infinity);
  });

  test("histogramQuantile() answers a non-positive first bound as it is", () => {
    assert.equal(histogramQuantile(0.5, [-1, 0, 1], [4, 0, 0, 0]), -1);
  });
});

describe("httpTotals()", () => {
  test("httpTotals() sums requests by status class and buckets over every series", () => {
    const t = httpTotals([
      { name: "other", kind: "counter", points: [{ attributes: {}, value: 9 }] },
      {
        name: "http.server.request.duration",
        kind: "histogram",
        boundaries: [0.1, 1],
        points: [
          { attributes: { "http.response.status_code": 200 }, count: 3, buckets: [2, 1, 0] },
          { attributes: { "http.response.status_code": 204 }, count: 1, buckets: [1, 0, 0] },
          { attributes: { "http.response.status_code": 404 }, count: 2, buckets: [0, 0, 2] },
          { attributes: { "http.response.status_code": 503 }, count: 1, buckets: [0, 1, 0] },
          { attributes: { "http.response.status_code": "x" }, count: 4, buckets: [9] },
        ],
      },
    ]);
    assert.deepEqual(t.classes, [4, 0, 2, 1, 4]);
    assert.deepEqual(t.bounds, [0.1, 1]);
    // A point whose buckets do not match the bounds is left out of the sum.
    assert.deepEqual(t.buckets, [3, 2, 2]);
  });
});

function sample(now: number, requests: number, workers: number, extra: Partial<MasterSample> = {}) {
  const per = Math.floor(requests / Math.max(1, workers));
  return {
    now,
    http: { classes: [requests, 0, 0, 0, 0], bounds: [0.1, 1], buckets: [requests, 0, 0] },
    workers: Array.from({ length: workers }, (_, i) => ({
      slot: i + 1,
      pid: 1000 + i,
      requests: per,
      memoryBytes: 50 * MiB,
    })),
    workerCount: workers,
    restarts: { crash: 0, reload: 0 },
    ...extra,
  } as MasterSample;
}

describe("DashboardHistory", () => {
  test("DashboardHistory.sample() gives rates and percentiles over the window", () => {
    const h = new DashboardHistory();
    h.windowSeconds = 2;
    for (let i = 0; i <= 4; i++) h.sample(sample(1000 * i, 100 * i, 2));
    const s = h.series(0);
    assert.deepEqual(s.t, [1000, 2000, 3000, 4000]);
    assert.deepEqual(s.r2xx, [100, 100, 100, 100]);
    close(s.p50[3]!, 0.05);
    assert.deepEqual(s.slots[1].rps, [50, 50, 50, 50]);
    assert.deepEqual(s.slots[2].memory.at(-1), 50 * MiB);
    assert.deepEqual(h.series(3000).t, [4000]);
  });

  test("DashboardHistory holds a fixed number of samples and events, within 2 MiB at 64 workers", () => {
    // What the ring and its windows hold, in bytes at most, with 64 workers:
    const perSample = 64 * 64 + 200; // a worker's entry and a sample's own fields
    const bound = HISTORY_BYTES + TIMELINE_EVENTS * (EVENT_TEXT_MAX * 2 + 64) +
      (WINDOW_MAX_SECONDS + 2) * perSample;
    assert.ok(bound <= 2 * MiB, `${bound} bytes`);
    assert.ok(HISTORY_SLOTS >= 64);
    const h = new DashboardHistory();
    h.windowSeconds = 1_000;
    for (let i = 0; i < HISTORY_SECONDS * 3; i++) {
      h.sample(sample(1000 * i, 10 * i, 64, { restarts: { crash: i } }));
      h.event(1000 * i, "x", "y".repeat(EVENT_TEXT_MAX * 4));
    }
    assert.equal(h.size, HISTORY_SECONDS);
    const s = h.series(0);
    assert.equal(s.t.length, HISTORY_SECONDS);
    assert.equal(s.t.at(-1), 1000 * (HISTORY_SECONDS * 3 - 1));
    assert.equal(Object.keys(s.slots).length, 64);
    const events = h.events(0);
    assert.equal(events.length, TIMELINE_EVENTS);
    assert.ok(events.every((e) => e.text.length <= EVENT_TEXT_MAX));
  });

  test("DashboardHistory keeps the rate of slots past its columns out, and a new process from zero", () => {
    const h = new DashboardHistory();
    h.sample(sample(0, 0, HISTORY_SLOTS + 5));
    h.sample(sample(1000, 10 * (HISTORY_SLOTS + 5), HISTORY_SLOTS + 5));
    assert.equal(Object.keys(h.series(0).slots).length, HISTORY_SLOTS);
    // Slot 1's process is replaced by one that has served 3 requests.
    const s = { ...sample(2000, 0, 1), workers: [{ slot: 1, pid: 5, requests: 3 }] };
    h.sample(s);
    assert.equal(h.series(1000).slots[1].rps[0], 3);
  });

  test("DashboardHistory timeline shows restarts by reason, scale changes and export failures", () => {
    const h = new DashboardHistory();
    const otlp = { exports: 1, failures: 0, retries: 0, dropped: 0 };
    h.sample(sample(1000, 0, 2, { otlp }));
    h.sample(
      sample(2000, 0, 2, { restarts: { crash: 1, reload: 2 }, otlp: { ...otlp, exports: 2 } }),
    );
    h.sample(
      sample(3000, 0, 4, { restarts: { crash: 1, reload: 2 }, otlp: { ...otlp, failures: 3 } }),
    );
    const kinds = h.events(0).map((e) => `${e.kind}: ${e.text}`);
    assert.deepEqual(kinds, [
      "start: watching 2 worker slot(s)",
      "restart: 1 worker(s) replaced: crash",
      "reload: 2 worker(s) replaced: reload",
      "scale: workers 2 → 4",
      "export: OTLP export: 3 failed, 0 batch(es) dropped",
    ]);
    assert.equal(h.lastExportAt, 2000);
  });
});

describe("sinceParam()", () => {
  test("sinceParam() reads a time and falls back to 0", () => {
    assert.equal(sinceParam("http://h/dashboard.json?since=1700000000000"), 1700000000000);
    assert.equal(sinceParam("http://h/dashboard.json"), 0);
    assert.equal(sinceParam("http://h/dashboard.json?since=-5"), 0);
    assert.equal(sinceParam("http://h/dashboard.json?since=Infinity"), 0);
  });
});
