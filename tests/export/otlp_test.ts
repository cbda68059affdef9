// deno-lint-ignore-file no-explicit-any
import { typedConfig } from "../../src/config/config.ts";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { OtlpBatcher } from "../../src/export/otlp_batch.ts";
import { Aggregator } from "../../src/export/aggregator.ts";
import {
  MAX_ANSWER_BYTES,
  OtlpExporter,
  parseRetryAfter,
  readPrefix,
  retryDelay,
  retryWait,
  sendOtlp,
} from "../../src/export/otlp_exporter.ts";
import { metricsUrl } from "../../src/config/derived.ts";
import { decodePartialSuccess, encodeOtlpProtobuf } from "../../src/export/otlp_protobuf.ts";
import type { HarvestMetric, MetricDelta } from "../../src/protocol/messages.ts";
import {
  type OtlpBatch,
  otlpJson,
  redactUrl,
  signalUrl,
  unixNano,
  urlCredentials,
} from "../../src/protocol/otlp.ts";
import {
  decodeProtobufRequest,
  isValidJsonRequest,
  OtlpReceiver,
  partialSuccessResponse,
} from "../_helpers/otlp_receiver.ts";
import { waitFor } from "../_helpers/master.ts";
import { recordingLog } from "../_helpers/recording_log.ts";

const T0 = 1_700_000_000_000;

const BATCH: OtlpBatch = {
  resource: {
    "service.name": "api",
    "process.pid": 42,
    "deployment.ratio": 0.5,
    on: true,
    "tz.offset": -3,
  },
  scope: { name: "forklift", version: "0.1.0" },
  metrics: [
    {
      name: "app.hits",
      unit: "{hit}",
      description: "Hits",
      type: "sum",
      temporality: 2,
      isMonotonic: true,
      points: [{
        attributes: { route: "/a" },
        startTimeUnixNano: unixNano(T0),
        timeUnixNano: unixNano(T0 + 1500.25),
        value: 7,
      }],
    },
    {
      name: "http.server.request.duration",
      unit: "s",
      type: "histogram",
      temporality: 1,
      points: [{
        attributes: { "http.request.method": "GET", "http.response.status_code": 200 },
        startTimeUnixNano: unixNano(T0),
        timeUnixNano: unixNano(T0 + 2000),
        count: 4,
        sum: 0.75,
        bucketCounts: [1, 2, 1],
        explicitBounds: [0.1, 0.5],
        min: 0.05,
        max: 0.4,
      }],
    },
    {
      name: "queue.depth",
      type: "gauge",
      points: [{
        attributes: { worker: 2 },
        startTimeUnixNano: unixNano(T0),
        timeUnixNano: unixNano(T0 + 2000),
        value: -1.5,
      }],
    },
  ],
};

describe("OTLP encodings", () => {
  test("otlpJson() writes 64-bit integers and times as decimal strings and enums as numbers", () => {
    const body = otlpJson(BATCH) as { resourceMetrics: Array<Record<string, any>> };
    const rm = body.resourceMetrics[0];
    assert.deepEqual(rm.resource.attributes, [
      { key: "service.name", value: { stringValue: "api" } },
      { key: "process.pid", value: { intValue: "42" } },
      { key: "deployment.ratio", value: { doubleValue: 0.5 } },
      { key: "on", value: { boolValue: true } },
      { key: "tz.offset", value: { intValue: "-3" } },
    ]);
    const [sum, hist, gauge] = rm.scopeMetrics[0].metrics;
    assert.deepEqual(rm.scopeMetrics[0].scope, { name: "forklift", version: "0.1.0" });
    assert.deepEqual(sum, {
      name: "app.hits",
      description: "Hits",
      unit: "{hit}",
      sum: {
        dataPoints: [{
          attributes: [{ key: "route", value: { stringValue: "/a" } }],
          startTimeUnixNano: "1700000000000000000",
          timeUnixNano: "1700000001500250000",
          asDouble: 7,
        }],
        aggregationTemporality: 2,
        isMonotonic: true,
      },
    });
    const hp = hist.histogram.dataPoints[0];
    assert.equal(hist.histogram.aggregationTemporality, 1);
    assert.equal(hp.count, "4");
    assert.deepEqual(hp.bucketCounts, ["1", "2", "1"]);
    assert.equal(hp.bucketCounts.length, hp.explicitBounds.length + 1);
    assert.deepEqual([hp.sum, hp.min, hp.max], [0.75, 0.05, 0.4]);
    assert.deepEqual(gauge.gauge.dataPoints[0].attributes, [{
      key: "worker",
      value: { intValue: "2" },
    }]);
  });

  test("encodeOtlpProtobuf() decodes, with the OTLP definitions, to exactly the JSON encoding", () => {
    const decoded = decodeProtobufRequest(encodeOtlpProtobuf(BATCH));
    assert.deepEqual(decoded, JSON.parse(JSON.stringify(otlpJson(BATCH))));
  });

  test("otlpJson() reads back through the OTLP definitions unchanged; a misnamed field does not", () => {
    const body = JSON.parse(JSON.stringify(otlpJson(BATCH)));
    assert.equal(isValidJsonRequest(body), true);
    body.resourceMetrics[0].scopeMetrics[0].metrics[0].sum.isMonotone = true;
    assert.equal(isValidJsonRequest(body), false);
  });

  test("decodePartialSuccess() reads what a collector rejected, and nothing from an empty answer", () => {
    assert.deepEqual(decodePartialSuccess(partialSuccessResponse(3, "bad unit")), {
      rejectedDataPoints: 3,
      errorMessage: "bad unit",
    });
    assert.equal(decodePartialSuccess(new Uint8Array()), undefined);
    assert.throws(() => decodePartialSuccess(new Uint8Array([0x0a, 0x05])), RangeError);
  });
});

function counterState(value: number, buckets = [1, 0]): MetricDelta[] {
  return [
    { name: "hits", kind: "counter", points: [{ attributes: { a: 1 }, value }] },
    { name: "level", kind: "updown", points: [{ attributes: {}, value: value - 10 }] },
    {
      name: "dur",
      kind: "histogram",
      boundaries: [1],
      points: [{
        attributes: {},
        count: buckets[0] + buckets[1],
        sum: value,
        buckets,
        min: 0.5,
        max: 3,
      }],
    },
  ];
}

function batcher(temporality: "cumulative" | "delta" | "lowmemory") {
  return new OtlpBatcher({
    temporality,
    startMs: T0,
    resource: () => ({ "service.name": "api" }),
    scope: { name: "forklift", version: "0" },
  });
}

describe("OtlpBatcher", () => {
  test("OtlpBatcher.build() keeps cumulative series starting at the master's start", () => {
    const b = batcher("cumulative");
    const first = b.build(counterState(5), T0 + 1000);
    first.commit();
    const second = b.build(counterState(8), T0 + 2000).batch;
    const hits = second.metrics.find((m) => m.name === "hits")!;
    assert.equal(hits.type === "sum" && hits.temporality, 2);
    assert.equal((hits.points[0] as any).value, 8);
    assert.equal(hits.points[0].startTimeUnixNano, unixNano(T0));
    const dur = second.metrics.find((m) => m.name === "dur")!;
    assert.deepEqual(dur.type === "histogram" && [dur.points[0].min, dur.points[0].max], [0.5, 3]);
  });

  test("OtlpBatcher.build() exports each delta once: an uncommitted batch is carried into the next", () => {
    const b = batcher("delta");
    b.build(counterState(5, [1, 1]), T0 + 1000).commit();
    // The collector is down: this one is never committed.
    b.build(counterState(7, [2, 1]), T0 + 2000);
    const next = b.build(counterState(9, [2, 3]), T0 + 3000);
    const hits = next.batch.metrics.find((m) => m.name === "hits")!;
    assert.equal(hits.type === "sum" && hits.temporality, 1);
    assert.equal((hits.points[0] as any).value, 4);
    assert.equal(hits.points[0].startTimeUnixNano, unixNano(T0 + 1000));
    const dur = next.batch.metrics.find((m) => m.name === "dur")!;
    assert.ok(dur.type === "histogram");
    assert.deepEqual(dur.points[0].bucketCounts, [1, 2]);
    assert.equal(dur.points[0].count, 3);
    assert.equal(dur.points[0].min, undefined, "a delta point has no extremes");
    // Up-down counters stay cumulative, as the specification's preference says.
    const level = next.batch.metrics.find((m) => m.name === "level")!;
    assert.equal(level.type === "sum" && level.temporality, 2);
    next.commit();
    const quiet = b.build(counterState(9, [2, 3]), T0 + 4000);
    assert.deepEqual(quiet.batch.metrics.map((m) => m.name), ["level"]);
  });

  test("OtlpBatcher.build() sends a series that started over whole in delta mode, never a negative delta", () => {
    const b = batcher("delta");
    b.build(counterState(30, [20, 10]), T0 + 1000).commit();
    // The state went back: a re-declared instrument, say, holding 2 and then 4 points.
    const next = b.build(counterState(2, [3, 1]), T0 + 2000);
    const hits = next.batch.metrics.find((m) => m.name === "hits")!;
    assert.equal((hits.points[0] as any).value, 2);
    assert.equal(hits.points[0].startTimeUnixNano, unixNano(T0 + 1000));
    const dur = next.batch.metrics.find((m) => m.name === "dur")!;
    assert.ok(dur.type === "histogram");
    assert.deepEqual([dur.points[0].count, dur.points[0].bucketCounts], [4, [3, 1]]);
    next.commit();
    // Other buckets: one bucket more is a new series too.
    const wider = counterState(3, [3, 1]);
    wider[2] = { ...wider[2], boundaries: [1, 2] };
    wider[2].points[0] = { ...wider[2].points[0], count: 5, buckets: [3, 1, 1] };
    const after = b.build(wider, T0 + 3000).batch.metrics.find((m) => m.name === "dur")!;
    assert.ok(after.type === "histogram");
    assert.deepEqual([after.points[0].count, after.points[0].bucketCounts], [5, [3, 1, 1]]);
    for (const m of [...next.batch.metrics]) {
      for (const p of m.points) {
        const v = "value" in p ? p.value : p.count;
        assert.ok(m.name === "level" || v >= 0, `${m.name}: ${v}`);
      }
    }
  });

  test("OtlpBatcher.build() sends a promoted declaration's series whole from its own start, never a negative delta", () => {
    let now = T0 + 500;
    const agg = new Aggregator({ now: () => now });
    const dur = (unit: string, count: number, sum: number, buckets: number[]): HarvestMetric => ({
      name: "dur",
      kind: "histogram",
      unit,
      boundaries: [1, 10],
      points: [{ attributes: {}, count, sum, buckets }],
    });
    const hits = (unit: string, value: number): HarvestMetric => ({
      name: "hits",
      kind: "counter",
      unit,
      points: [{ attributes: {}, value }],
    });
    // Generation 1 (worker 1) reports in milliseconds, and is exported.
    agg.merge(1, [dur("ms", 1, 900, [0, 0, 1]), hits("ms", 5)]);
    const b = batcher("delta");
    b.build(agg.collect(), T0 + 1000).commit();
    // Generation 2 (worker 2) reports in seconds: more points, a smaller sum and value.
    now = T0 + 1500;
    agg.merge(2, [dur("s", 2, 1.5, [0, 1, 1]), hits("s", 3)]);
    agg.merge(1, [dur("ms", 1, 800, [0, 0, 1])]);
    // An export while the new declaration waits: only the old one's points go.
    b.build(agg.collect(), T0 + 1700).commit();
    agg.removeWorker(1);
    agg.merge(2, [dur("s", 1, 0.5, [1, 0, 0]), hits("s", 4)]);
    const batch = b.build(agg.collect(), T0 + 2000).batch;
    const h = batch.metrics.find((m) => m.name === "dur")!;
    assert.ok(h.type === "histogram");
    assert.equal(h.unit, "s");
    assert.deepEqual([h.points[0].count, h.points[0].sum, h.points[0].bucketCounts], [3, 2, [
      1,
      1,
      1,
    ]]);
    assert.equal(h.points[0].startTimeUnixNano, unixNano(T0 + 1500), "all it gathered, since then");
    const c = batch.metrics.find((m) => m.name === "hits")!;
    assert.equal((c.points[0] as any).value, 7, "all of the new counter, none taken off");
    // Cumulative mode starts the new series at their own start too.
    const cumulative = batcher("cumulative").build(agg.collect(), T0 + 2000).batch;
    assert.equal(cumulative.metrics[0].points[0].startTimeUnixNano, unixNano(T0 + 1500));
  });

  test("OtlpBatcher.build() treats lowmemory as delta for counters and histograms", () => {
    const b = batcher("lowmemory");
    b.build(counterState(5), T0 + 1000).commit();
    const hits = b.build(counterState(6), T0 + 2000).batch.metrics[0];
    assert.deepEqual(hits.type === "sum" && [hits.temporality, (hits.points[0] as any).value], [
      1,
      1,
    ]);
  });
});

function exporter(
  url: string,
  collect: () => MetricDelta[],
  extra: Partial<{ gzip: boolean; timeoutMs: number }> = {},
) {
  const log = recordingLog();
  const e = new OtlpExporter({
    url: `${url}/v1/metrics`,
    protocol: "http/protobuf",
    gzip: extra.gzip ?? false,
    headers: { "api-key": "secret-key" },
    timeoutMs: extra.timeoutMs ?? 2_000,
    intervalMs: 100,
    batcher: batcher("cumulative"),
    collect,
    log,
    random: () => 0.5,
  });
  return { e, log };
}

describe("OtlpExporter against a local receiver", () => {
  test("OtlpExporter honours Retry-After, backs off, and loses nothing", async () => {
    const r = new OtlpReceiver();
    const url = await r.listen();
    r.answers = [{ status: 503, headers: { "retry-after": "1" } }, { status: 429 }];
    let value = 1;
    const { e, log } = exporter(url, () => counterState(value++));
    try {
      e.start();
      await waitFor("two accepted exports", () => r.accepted.length >= 2, 8_000).catch(() => {});
      assert.ok(r.accepted.length >= 2, `accepted ${r.accepted.length}`);
      const [a, b, c] = r.received;
      assert.deepEqual([a.status, b.status, c.status], [503, 429, 200]);
      assert.ok(b.at - a.at >= 950, `Retry-After 1 s not honoured: ${b.at - a.at | 0} ms`);
      // Backoff after a 429 without Retry-After: the second delay, 2 s at jitter 0.5.
      assert.ok(c.at - b.at >= 1_900, `no backoff: ${c.at - b.at | 0} ms`);
      assert.equal(r.received[0].headers["api-key"], "secret-key");
      assert.equal(r.received[0].contentType, "application/x-protobuf");
      // The accepted export carries the latest state: nothing counted meanwhile is lost.
      const hits = (c.body as any).resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints[0];
      assert.ok(hits.asDouble >= 3, JSON.stringify(hits));
      assert.deepEqual(e.stats.retries, 2);
      assert.equal(log.lines.filter((l) => l.startsWith("warn")).length, 1, log.lines.join("\n"));
      assert.ok(log.lines.every((l) => !l.includes("secret-key")));
    } finally {
      await e.shutdown(1_000);
      await r.close();
    }
  });

  test("OtlpExporter drops a refused batch with one warning, never overlaps requests, and gzips", async () => {
    const r = new OtlpReceiver();
    const url = await r.listen();
    r.answers = [
      // Slower than the export interval: the next export must wait for it.
      { status: 400, delayMs: 300 },
      {
        status: 200,
        headers: { "content-type": "application/x-protobuf" },
        body: partialSuccessResponse(2, "unit too long"),
      },
    ];
    const { e, log } = exporter(url, () => counterState(5), { gzip: true });
    try {
      e.start();
      await waitFor("three requests", () => r.received.length >= 3, 5_000).catch(() => {});
      assert.deepEqual(r.received.slice(0, 3).map((x) => x.status), [400, 200, 200]);
      assert.equal(r.received[0].headers["content-encoding"], "gzip");
      assert.equal(r.maxInFlight, 1);
      assert.equal(e.stats.dropped, 1);
      assert.equal(e.stats.retries, 0);
      const warnings = log.lines.filter((l) => l.startsWith("warn"));
      assert.equal(warnings.length, 2, warnings.join("\n"));
      assert.match(warnings[0], /refused \(HTTP 400\); dropped 3 data point\(s\)/);
      assert.match(warnings[1], /rejected 2 data point\(s\): unit too long/);
    } finally {
      await e.shutdown(1_000);
      await r.close();
    }
  });

  test("OtlpExporter sends credentials in the URL as Basic authorization and never logs them", async () => {
    const r = new OtlpReceiver();
    const base = await r.listen();
    r.answers = [{ status: 503, headers: { "retry-after": "0" } }];
    const { e, log } = exporter(
      base.replace("http://", "http://me:s3cret@"),
      () => counterState(1),
    );
    try {
      e.start();
      await waitFor("an accepted export", () => r.accepted.length >= 1, 5_000);
      assert.equal(r.received[0].headers.authorization, `Basic ${btoa("me:s3cret")}`);
      assert.ok(log.lines.length > 0);
      assert.ok(log.lines.every((l) => !l.includes("s3cret")), log.lines.join("\n"));
      assert.match(log.lines[0], /http:\/\/\*\*\*\*@127\.0\.0\.1/);
    } finally {
      await e.shutdown(1_000);
      await r.close();
    }
  });

  test("OtlpExporter.shutdown() sends a final export, once", async () => {
    const r = new OtlpReceiver();
    const url = await r.listen();
    const { e } = exporter(url, () => counterState(42));
    await e.shutdown(1_000);
    await e.shutdown(1_000);
    assert.equal(r.received.length, 1);
    assert.ok(e.stats.bytes > 0);
    await r.close();
  });

  test("retryDelay() and parseRetryAfter() follow the specification's backoff", () => {
    assert.deepEqual([0, 1, 2, 6, 20].map((n) => retryDelay(n, () => 0.5)), [
      1000,
      2000,
      4000,
      60_000,
      60_000,
    ]);
    assert.equal(retryDelay(0, () => 0), 800);
    assert.equal(retryDelay(0, () => 0.999), 1200);
    assert.equal(
      parseRetryAfter("Wed, 21 Oct 2015 07:28:05 GMT", Date.parse("2015-10-21T07:28:00Z")),
      5000,
    );
    assert.equal(parseRetryAfter("soon", 0), undefined);
    assert.equal(parseRetryAfter(null, 0), undefined);
  });
});

/** Resolves to how long `p` took, or rejects once `limitMs` has passed without it. */
async function within(p: Promise<unknown>, limitMs: number, what: string): Promise<number> {
  const t0 = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: still waiting after ${limitMs} ms`)),
      limitMs,
    );
  });
  try {
    await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
  return performance.now() - t0;
}

describe("OTLP URLs", () => {
  test("redactUrl() hides a password holding '@' and every query value", () => {
    assert.equal(redactUrl("http://user:p@ss@host:4318/x"), "http://****@host:4318/x");
    assert.equal(redactUrl("https://u:a@b@c@h/v1/metrics"), "https://****@h/v1/metrics");
    assert.equal(
      redactUrl("https://h/v1/metrics?api_key=s3cret&tenant=a&flag#top"),
      "https://h/v1/metrics?api_key=****&tenant=****&****#top",
    );
    assert.equal(redactUrl("http://h:4318"), "http://h:4318");
    assert.equal(redactUrl("not a url?token=s3cret"), "not a url?****");
    // What is hidden is what fetch would send as the password.
    const { authorization } = urlCredentials("http://user:p@ss@host/");
    assert.equal(authorization, `Basic ${btoa("user:p@ss")}`);
  });

  test("urlCredentials() sends a password whose percent-encoding is broken as written, never throwing", () => {
    // URL parsing lets "%zz" through, so the settings take it; the first export used to throw.
    const r = urlCredentials("http://me:50%zz@c:4318/v1/metrics");
    assert.equal(r.url, "http://c:4318/v1/metrics");
    assert.equal(r.authorization, `Basic ${btoa("me:50%zz")}`);
    assert.equal(redactUrl("http://me:50%zz@c:4318/v1/metrics"), "http://****@c:4318/v1/metrics");
  });

  test("metricsUrl() adds /v1/metrics to the endpoint's path, never inside its query", () => {
    assert.equal(
      metricsUrl(typedConfig({ otlp_endpoint: "https://c:4318/otlp?api_key=k" })),
      "https://c:4318/otlp/v1/metrics?api_key=k",
    );
    assert.equal(
      metricsUrl(typedConfig({ otlp_endpoint: "http://c:4318" })),
      "http://c:4318/v1/metrics",
    );
    assert.equal(
      metricsUrl(typedConfig({ otlp_endpoint: "http://c/?a=1#f" })),
      "http://c/v1/metrics?a=1#f",
    );
    assert.equal(
      signalUrl("http://u:p@ss@c/base/", "/v1/metrics"),
      "http://u:p@ss@c/base/v1/metrics",
    );
    assert.equal(
      metricsUrl(
        typedConfig({ otlp_endpoint: "http://c/x", otlp_metrics_endpoint: "http://d/m?k=v" }),
      ),
      "http://d/m?k=v",
    );
  });
});

describe("OtlpExporter against a hostile collector", () => {
  test("OtlpExporter does not follow a redirect: the API key goes nowhere else, said once", async () => {
    const elsewhere = new OtlpReceiver();
    const target = await elsewhere.listen();
    const r = new OtlpReceiver();
    const url = await r.listen();
    r.answers = [
      { status: 307, headers: { location: `${target}/v1/metrics?api_key=leak` } },
      { status: 302, headers: { location: `${target}/v1/metrics` } },
      { status: 308, headers: { location: "/elsewhere" } },
    ];
    const { e, log } = exporter(url, () => counterState(1));
    try {
      e.start();
      // The receiver counts an export as it answers; the exporter, once the answer has arrived.
      await waitFor(
        "an accepted export",
        () => r.accepted.length >= 1 && e.stats.exports >= 1,
        5_000,
      );
      assert.deepEqual(r.received.slice(0, 4).map((x) => x.status), [307, 302, 308, 200]);
      assert.equal(elsewhere.received.length, 0, "the export followed the redirect");
      assert.equal(e.stats.dropped, 3);
      const warnings = log.lines.filter((l) => l.startsWith("warn"));
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(
        warnings[0],
        /collector redirected to http:\/\/127\.0\.0\.1:\d+\/v1\/metrics\?api_key=\*\*\*\*; forklift does not follow redirects/,
      );
    } finally {
      await e.shutdown(1_000);
      await r.close();
      await elsewhere.close();
    }
  });

  test("OtlpExporter logs a collector's reason for rejecting points on one short line", async () => {
    const r = new OtlpReceiver();
    const url = await r.listen();
    r.answers = [{
      status: 200,
      headers: { "content-type": "application/x-protobuf" },
      body: partialSuccessResponse(2, "bad unit\n[ERROR] forged line\r\n".repeat(300)),
    }];
    const { e, log } = exporter(url, () => counterState(1));
    try {
      e.start();
      await waitFor("an export", () => log.lines.length >= 1, 5_000);
      assert.equal(log.lines.length, 1, log.lines.join("\n"));
      assert.ok(!log.lines[0].includes("\n"), "the reason spans lines");
      assert.ok(log.lines[0].length < 400, `${log.lines[0].length} characters`);
      assert.match(
        log.lines[0],
        /rejected 2 data point\(s\): bad unit\\n\[ERROR\] forged line\\r\\n/,
      );
    } finally {
      await e.shutdown(500);
      await r.close();
    }
  });

  test("sendOtlp() reads no more than a bounded prefix of a 200 MB answer", async () => {
    const r = new OtlpReceiver();
    const url = await r.listen();
    const huge = 200 * 1024 * 1024;
    r.answers = [
      { status: 200, headers: { "content-type": "application/json" }, streamBytes: huge },
      { status: 503, streamBytes: huge },
    ];
    try {
      const options = {
        url: `${url}/v1/metrics`,
        protocol: "http/json" as const,
        gzip: false,
        headers: {},
        timeoutMs: 20_000,
      };
      const ms = await within(sendOtlp(BATCH, options), 10_000, "a 200 MB success");
      const after200 = r.streamed;
      await within(sendOtlp(BATCH, options), 10_000, "a 200 MB refusal");
      console.log(
        `200 MB answers: read in ${ms | 0} ms; the collector got ${
          (after200 / 2 ** 20).toFixed(1)
        } MiB and ${
          ((r.streamed - after200) / 2 ** 20).toFixed(1)
        } MiB out before the exporter hung up`,
      );
      // What sits in socket buffers gets out; the rest is never made.
      assert.ok(after200 < huge / 4, `${after200} bytes taken of a success`);
      assert.ok(r.streamed - after200 < huge / 4, `${r.streamed - after200} bytes of a refusal`);
    } finally {
      await r.close();
    }
  });

  test("sendOtlp() gives up on an answer that trickles in, at its timeout", async () => {
    // Headers at once, then a byte every 100 ms, forever.
    const server = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        const t = setInterval(() => res.destroyed || res.write(" "), 100);
        res.on("close", () => clearInterval(t));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    try {
      const ms = await within(
        sendOtlp(BATCH, {
          url: `http://127.0.0.1:${port}/v1/metrics`,
          protocol: "http/json",
          gzip: false,
          headers: {},
          timeoutMs: 800,
        }),
        5_000,
        "a trickling answer",
      );
      assert.ok(ms < 2_000, `took ${ms | 0} ms`);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test("readPrefix() stops at its limit and cancels the rest", async () => {
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(c) {
        pulled++;
        c.enqueue(new Uint8Array(1000));
      },
    });
    const bytes = await readPrefix(endless, MAX_ANSWER_BYTES);
    assert.equal(bytes.length, MAX_ANSWER_BYTES);
    assert.ok(pulled < 100, `${pulled} chunks pulled`);
    assert.equal((await readPrefix(new Response("abc").body, 10)).length, 3);
    assert.equal((await readPrefix(null, 10)).length, 0);
  });

  test("OtlpExporter waits at least its backoff when the collector asks for a retry at once", async () => {
    const r = new OtlpReceiver();
    const url = await r.listen();
    r.answers = Array.from({ length: 50 }, () => ({
      status: 503,
      headers: { "retry-after": "0" },
    }));
    const { e } = exporter(url, () => counterState(1));
    try {
      e.start();
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      // Sent at about 0.1 s, then after 1 s and 2 s of backoff: three, not hundreds.
      assert.ok(r.received.length <= 3, `${r.received.length} requests in 2.5 s`);
      assert.ok(r.received.length >= 2, `${r.received.length} requests in 2.5 s`);
      assert.equal(retryWait(0, 0, () => 0.5), 1_000);
      assert.equal(retryWait(3, 0, () => 0.5), 8_000);
      assert.equal(retryWait(0, 30_000, () => 0.5), 30_000);
    } finally {
      await e.shutdown(500);
      await r.close();
    }
  });

  test("OtlpExporter.shutdown() does not wait out a Retry-After of 120 s: the final export goes at once", async () => {
    const r = new OtlpReceiver();
    const url = await r.listen();
    // The stop comes while this answer is on its way.
    r.answers = [{ status: 503, headers: { "retry-after": "120" }, delayMs: 400 }];
    const { e, log } = exporter(url, () => counterState(7), { timeoutMs: 10_000 });
    try {
      e.start();
      await waitFor("a request in flight", () => r.received.length >= 1, 3_000);
      const ms = await within(e.shutdown(5_000), 8_000, "shutdown()");
      assert.ok(ms < 2_000, `shutdown took ${ms | 0} ms`);
      assert.deepEqual(r.received.map((x) => x.status), [503, 200]);
      assert.equal(e.stats.exports, 1);
      assert.equal(e.stats.dropped, 0);
      assert.ok(log.lines.every((l) => !l.includes("abandoned")), log.lines.join("\n"));
    } finally {
      await e.shutdown(500);
      await r.close();
    }
  });

  test("OtlpExporter.shutdown() abandons an export to a collector that hangs, within its time, and says so", async () => {
    const r = new OtlpReceiver();
    const url = await r.listen();
    r.answers = [{ status: 200, delayMs: 60_000 }, { status: 200, delayMs: 60_000 }];
    const { e, log } = exporter(url, () => counterState(7), { timeoutMs: 30_000 });
    try {
      e.start();
      await waitFor("a request in flight", () => r.received.length >= 1, 3_000);
      const ms = await within(e.shutdown(800), 10_000, "shutdown(800)");
      assert.ok(ms >= 700 && ms < 1_800, `shutdown(800) took ${ms | 0} ms`);
      assert.equal(e.stats.dropped, 1);
      assert.equal(e.stats.exports, 0);
      const said = log.lines.filter((l) => l.includes("abandoned"));
      assert.equal(said.length, 1, log.lines.join("\n"));
      assert.match(
        said[0],
        /^warn: Final OTLP export to http:\/\/127\.0\.0\.1:\d+\/v1\/metrics abandoned after \d+ ms/,
      );

      // Idle when the stop comes, the final export itself hangs: the same bound holds.
      const r2 = new OtlpReceiver();
      const url2 = await r2.listen();
      r2.answers = [{ status: 200, delayMs: 60_000 }];
      const idle = exporter(url2, () => counterState(7), { timeoutMs: 30_000 });
      try {
        const ms2 = await within(idle.e.shutdown(600), 10_000, "shutdown(600)");
        assert.ok(ms2 < 1_600, `shutdown(600) took ${ms2 | 0} ms`);
        assert.equal(r2.received.length, 1);
        assert.equal(idle.e.stats.dropped, 1);
        assert.match(
          idle.log.lines.join("\n"),
          /abandoned after \d+ ms.*1 data point|abandoned after \d+ ms.*data point\(s\) not sent/,
        );
      } finally {
        await r2.close();
      }
    } finally {
      await r.close();
    }
  });
});
