import { test } from "node:test";
import assert from "node:assert/strict";
import {
  formatPrometheusNumber,
  masterMetrics,
  prometheusLabelName,
  prometheusMetricName,
  type PrometheusSkip,
  prometheusUnit,
  renderPrometheus,
  renderPrometheusAsync,
} from "../../src/export/prometheus.ts";
import { Aggregator } from "../../src/export/aggregator.ts";
import { NEEDS_PROMTOOL, promtoolCheck } from "../_helpers/promtool.ts";
import type { InstrumentKind, MetricDelta, PointDelta } from "../../src/protocol/messages.ts";

const BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

const promtool = promtoolCheck;
const NO_PROMTOOL = NEEDS_PROMTOOL;

test("prometheusMetricName() adds unit suffixes and _total the OpenTelemetry way", () => {
  const cases: [string, InstrumentKind, string | undefined, string][] = [
    ["http.server.request.duration", "histogram", "s", "http_server_request_duration_seconds"],
    ["app.cache.hits", "counter", undefined, "app_cache_hits_total"],
    ["app.cache.hits", "counter", "{hit}", "app_cache_hits_total"],
    ["app.hits_total", "counter", undefined, "app_hits_total"],
    ["db.latency", "gauge", "ms", "db_latency_milliseconds"],
    ["db.latency_milliseconds", "gauge", "ms", "db_latency_milliseconds"],
    ["net.io", "counter", "By", "net_io_bytes_total"],
    ["net.rate", "gauge", "By/s", "net_rate_bytes_per_second"],
    ["cpu.utilization", "gauge", "1", "cpu_utilization_ratio"],
    ["jobs.done", "counter", "1", "jobs_done_total"],
    ["queue.depth", "updown", "{item}", "queue_depth"],
    ["weird-name/with spaces", "gauge", undefined, "weird_name_with_spaces"],
    ["2xx.responses", "counter", undefined, "_2xx_responses_total"],
  ];
  for (const [name, kind, unit, expected] of cases) {
    assert.equal(prometheusMetricName({ name, kind, unit }), expected, `${name} (${unit})`);
  }
});

test("prometheusUnit() maps UCUM units and drops annotations", () => {
  assert.equal(prometheusUnit("s"), "seconds");
  assert.equal(prometheusUnit("ms"), "milliseconds");
  assert.equal(prometheusUnit("By"), "bytes");
  assert.equal(prometheusUnit("KiBy"), "kibibytes");
  assert.equal(prometheusUnit("{request}"), "");
  assert.equal(prometheusUnit("{request}/s"), "per_second");
  assert.equal(prometheusUnit("1"), "");
  assert.equal(prometheusUnit("1", true), "ratio");
  assert.equal(prometheusUnit("widgets"), "widgets");
});

test("prometheusUnit() takes a unit named after an Object.prototype member as an unknown unit", () => {
  for (const unit of ["toString", "constructor", "hasOwnProperty", "__proto__", "valueOf"]) {
    assert.equal(prometheusUnit(unit), unit.replace(/^_+|_+$/g, ""));
    assert.equal(
      prometheusUnit(`By/${unit}`),
      `bytes_per_${unit}`.replace(/_+$/, "").replace(/__+/g, "_"),
    );
    const text = renderPrometheus([
      {
        name: "app.x",
        kind: "counter",
        unit,
        points: [{ attributes: { [unit]: unit }, value: 1 }],
      },
    ]);
    assert.match(text, /^app_x_\w+_total\{\w+="\w+"\} 1$/m, text);
  }
});

test("prometheusLabelName() turns invalid characters into underscores", () => {
  assert.equal(prometheusLabelName("otel.metric.overflow"), "otel_metric_overflow");
  assert.equal(prometheusLabelName("http.response.status_code"), "http_response_status_code");
  assert.equal(prometheusLabelName("0day"), "key_0day");
});

test("formatPrometheusNumber() writes special values and integers the way Prometheus reads them", () => {
  assert.equal(formatPrometheusNumber(Infinity), "+Inf");
  assert.equal(formatPrometheusNumber(-Infinity), "-Inf");
  assert.equal(formatPrometheusNumber(NaN), "NaN");
  assert.equal(formatPrometheusNumber(-0), "0");
  assert.equal(formatPrometheusNumber(12), "12");
  assert.equal(formatPrometheusNumber(1e20), "100000000000000000000");
  assert.equal(formatPrometheusNumber(0.25), "0.25");
  assert.equal(Number(formatPrometheusNumber(1e-9)), 1e-9);
});

test("renderPrometheus() writes histograms with cumulative buckets, +Inf, _sum and _count", () => {
  const text = renderPrometheus([{
    name: "http.server.request.duration",
    kind: "histogram",
    unit: "s",
    description: "Duration of HTTP server requests",
    boundaries: [0.1, 1],
    points: [{
      attributes: { "http.request.method": "GET", "http.response.status_code": 200 },
      count: 6,
      sum: 3.5,
      buckets: [3, 2, 1],
    }],
  }]);
  const labels = 'http_request_method="GET",http_response_status_code="200"';
  assert.equal(
    text,
    [
      "# HELP http_server_request_duration_seconds Duration of HTTP server requests",
      "# TYPE http_server_request_duration_seconds histogram",
      `http_server_request_duration_seconds_bucket{${labels},le="0.1"} 3`,
      `http_server_request_duration_seconds_bucket{${labels},le="1"} 5`,
      `http_server_request_duration_seconds_bucket{${labels},le="+Inf"} 6`,
      `http_server_request_duration_seconds_sum{${labels}} 3.5`,
      `http_server_request_duration_seconds_count{${labels}} 6`,
      "",
    ].join("\n"),
  );
});

test("renderPrometheus() writes counters with _total and the overflow label", () => {
  const text = renderPrometheus([{
    name: "app.cache.hits",
    kind: "counter",
    points: [
      { attributes: { "cache.name": "users" }, value: 3 },
      { attributes: { "otel.metric.overflow": true }, value: 40 },
    ],
  }]);
  assert.equal(
    text,
    [
      "# HELP app_cache_hits_total app.cache.hits",
      "# TYPE app_cache_hits_total counter",
      'app_cache_hits_total{cache_name="users"} 3',
      'app_cache_hits_total{otel_metric_overflow="true"} 40',
      "",
    ].join("\n"),
  );
});

test("renderPrometheus() writes up-down counters and gauges as gauges", () => {
  const text = renderPrometheus([
    { name: "app.sessions", kind: "updown", points: [{ attributes: {}, value: -2 }] },
    { name: "app.queue", kind: "gauge", points: [{ attributes: { worker: "1" }, value: 1.5 }] },
  ]);
  assert.match(text, /^# TYPE app_sessions gauge\napp_sessions -2$/m);
  assert.match(text, /^# TYPE app_queue gauge\napp_queue\{worker="1"\} 1\.5$/m);
});

test("renderPrometheus() escapes label values and help text", () => {
  const text = renderPrometheus([{
    name: "app.odd",
    kind: "gauge",
    description: 'Back\\slash and\nnewline "quoted"',
    points: [{ attributes: { path: 'C:\\dir\n"x"' }, value: 1 }],
  }]);
  assert.equal(
    text,
    [
      '# HELP app_odd Back\\\\slash and\\nnewline "quoted"',
      "# TYPE app_odd gauge",
      'app_odd{path="C:\\\\dir\\n\\"x\\""} 1',
      "",
    ].join("\n"),
  );
});

test("renderPrometheus() joins values of attribute keys that map to the same label", () => {
  const text = renderPrometheus([{
    name: "app.x",
    kind: "gauge",
    points: [{ attributes: { "a_b": "2", "a.b": "1" }, value: 1 }],
  }]);
  assert.match(text, /^app_x\{a_b="1;2"\} 1$/m);
});

test("renderPrometheus() writes the same labels whatever the attributes' key order, and keeps series apart that only escaping tells apart", () => {
  const points: PointDelta[] = [
    { attributes: { z: "1", a: "2", "1x": "3" }, value: 1 },
    { attributes: { a: 'x",b="y' }, value: 2 },
    { attributes: { a: "x", b: "y" }, value: 3 },
    // The same series as the first, its keys in another order: left out.
    { attributes: { "1x": "3", a: "2", z: "1" }, value: 4 },
  ];
  const skips: PrometheusSkip[] = [];
  const text = renderPrometheus([{ name: "app.x", kind: "gauge", points }], {
    onSkip: (s) => skips.push(s),
  });
  assert.deepEqual(text.split("\n").filter((l) => l.startsWith("app_x")), [
    'app_x{a="2",key_1x="3",z="1"} 1',
    'app_x{a="x\\",b=\\"y"} 2',
    'app_x{a="x",b="y"} 3',
  ]);
  assert.equal(skips.length, 1);
  assert.equal(skips[0].points, 1);
  const histogram = renderPrometheus([{
    name: "app.h",
    kind: "histogram",
    boundaries: [1],
    points: [{ attributes: { le: "5", a: "1" }, count: 1, sum: 0.5, buckets: [1, 0] }],
  }]);
  assert.match(histogram, /^app_h_bucket\{a="1",le="1"\} 1$/m);
  assert.match(histogram, /^app_h_count\{a="1"\} 1$/m);
});

test("renderPrometheus() leaves out metrics without points", () => {
  assert.equal(renderPrometheus([]), "");
  assert.equal(renderPrometheus([{ name: "app.none", kind: "counter", points: [] }]), "");
});

test("renderPrometheus() merges two names that map to the same family and skips duplicate series", () => {
  const skips: PrometheusSkip[] = [];
  const text = renderPrometheus([
    { name: "app.hits", kind: "counter", points: [{ attributes: { a: "1" }, value: 1 }] },
    {
      name: "app_hits",
      kind: "counter",
      points: [{ attributes: { a: "1" }, value: 5 }, { attributes: { a: "2" }, value: 2 }],
    },
  ], { onSkip: (s) => skips.push(s) });
  assert.equal(
    text,
    [
      "# HELP app_hits_total app.hits",
      "# TYPE app_hits_total counter",
      'app_hits_total{a="1"} 1',
      'app_hits_total{a="2"} 2',
      "",
    ].join("\n"),
  );
  assert.equal(skips.length, 1);
  assert.equal(skips[0].name, "app_hits");
  assert.equal(skips[0].prometheusName, "app_hits_total");
  assert.equal(skips[0].points, 1);
});

test("renderPrometheus() skips a metric whose name is taken by another type or by histogram samples", () => {
  const skips: PrometheusSkip[] = [];
  const text = renderPrometheus([
    {
      name: "rpc.duration",
      kind: "histogram",
      boundaries: [1],
      points: [{ attributes: {}, count: 1, sum: 0.5, buckets: [1, 0] }],
    },
    { name: "rpc.duration.count", kind: "gauge", points: [{ attributes: {}, value: 3 }] },
    { name: "rpc.duration", kind: "gauge", points: [{ attributes: {}, value: 3 }] },
    { name: "jobs", kind: "counter", points: [{ attributes: {}, value: 1 }] },
    { name: "jobs.total", kind: "gauge", points: [{ attributes: {}, value: 1 }] },
  ], { onSkip: (s) => skips.push(s) });
  assert.deepEqual(skips.map((s) => s.name), ["rpc.duration.count", "rpc.duration", "jobs.total"]);
  assert.equal(text.match(/^# TYPE /gm)?.length, 2);
  assert.doesNotMatch(text, /rpc_duration_count 3/);
});

test("masterMetrics() builds the master's own metrics with Prometheus names", () => {
  const text = renderPrometheus(masterMetrics({
    workers: 4,
    restarts: { timeout: 1, crash: 2 },
    harvests: 120,
    dropped: { worker: 1, invalid: 2 },
  }));
  const samples = text.split("\n").filter((l) => l !== "" && !l.startsWith("#"));
  assert.deepEqual(samples, [
    'forklift_dropped_points_total{reason="invalid"} 2',
    'forklift_dropped_points_total{reason="worker"} 1',
    "forklift_harvests_total 120",
    'forklift_worker_restarts_total{reason="crash"} 2',
    'forklift_worker_restarts_total{reason="timeout"} 1',
    "forklift_workers 4",
  ]);
  assert.match(text, /^# TYPE forklift_workers gauge$/m);
  assert.match(text, /^# TYPE forklift_worker_restarts_total counter$/m);
});

test("renderPrometheus() output passes promtool check metrics", { skip: NO_PROMTOOL }, () => {
  const agg = new Aggregator({ cardinalityLimit: 4 });
  const request = (method: string, status: number, buckets: number[]) => ({
    attributes: {
      "http.response.status_code": status,
      "http.request.method": method,
      "http.route": "/users/:id",
    },
    count: buckets.reduce((a, b) => a + b, 0),
    sum: 0.042 * buckets.reduce((a, b) => a + b, 0),
    min: 0.001,
    max: 9.5,
    buckets,
  });
  for (const worker of [1, 2, 3]) {
    agg.merge(worker, [
      {
        name: "http.server.request.duration",
        kind: "histogram",
        unit: "s",
        description: "Duration of HTTP server requests.",
        boundaries: BOUNDS,
        points: [
          request("GET", 200, [5, 9, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
          request("POST", 500, [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0]),
        ],
      },
      {
        name: "app.cache.hits",
        kind: "counter",
        unit: "{hit}",
        points: ["a", "b", "c", "d", "e"].map((user) => ({ attributes: { user }, value: 2 })),
      },
      {
        name: "app.queue.depth",
        kind: "gauge",
        unit: "{job}",
        description: 'Jobs waiting\nin "the" queue \\ now',
        points: [{ attributes: { queue: 'mail "urgent"\n' }, value: worker * 2.5 }],
      },
      { name: "app.sessions", kind: "updown", points: [{ attributes: {}, value: worker }] },
      {
        name: "process.memory",
        kind: "gauge",
        unit: "By",
        points: [{ attributes: {}, value: 3e7 }],
      },
      { name: "app.temperature", kind: "gauge", points: [{ attributes: {}, value: -Infinity }] },
    ]);
  }
  agg.removeWorker(3);
  const text = renderPrometheus([
    ...masterMetrics({ workers: 2, restarts: { crash: 1, timeout: 0 }, harvests: 3, dropped: {} }),
    ...agg.collect(),
  ]);
  assert.match(text, /otel_metric_overflow="true"/);
  assert.match(text, /le="\+Inf"/);
  const result = promtool(text)!;
  assert.equal(result.output, "", `promtool complained:\n${result.output}\n---\n${text}`);
  assert.equal(result.code, 0);
});

test(
  "renderPrometheus() stays valid for promtool when names collide",
  { skip: NO_PROMTOOL },
  () => {
    const metrics: MetricDelta[] = [
      {
        name: "rpc.duration",
        kind: "histogram",
        unit: "s",
        boundaries: [1],
        points: [{ attributes: {}, count: 1, sum: 0.5, buckets: [1, 0] }],
      },
      { name: "rpc.duration.seconds.count", kind: "gauge", points: [{ attributes: {}, value: 3 }] },
      { name: "rpc_duration", kind: "gauge", unit: "s", points: [{ attributes: {}, value: 3 }] },
      { name: "jobs", kind: "counter", points: [{ attributes: { k: 1 }, value: 1 }] },
      { name: "jobs_total", kind: "counter", points: [{ attributes: { k: "1" }, value: 1 }] },
      { name: "jobs.total", kind: "gauge", points: [{ attributes: {}, value: 1 }] },
    ];
    let skipped = 0;
    const text = renderPrometheus(metrics, { onSkip: (s) => skipped += s.points });
    assert.equal(skipped, 4);
    const result = promtool(text)!;
    assert.equal(result.output, "", `promtool complained:\n${result.output}\n---\n${text}`);
    assert.equal(result.code, 0);
  },
);

test("renderPrometheusAsync() writes what renderPrometheus() writes, pausing between turns", async () => {
  const metrics: MetricDelta[] = [
    {
      name: "app.h",
      kind: "histogram",
      unit: "s",
      boundaries: [0.1, 1],
      points: [1, 2, 3].map((i) => ({
        attributes: { i },
        count: i,
        sum: i / 10,
        buckets: [i, 0, 0],
      })),
    },
    { name: "app.h", kind: "histogram", boundaries: [5], points: [{ attributes: {}, count: 1 }] },
    {
      name: "app.c",
      kind: "counter",
      points: [1, 2, 3, 1].map((i) => ({ attributes: { i }, value: i })),
    },
  ];
  const skips = (into: PrometheusSkip[]) => ({ onSkip: (s: PrometheusSkip) => into.push(s) });
  const expected: PrometheusSkip[] = [];
  const text = renderPrometheus(metrics, skips(expected));
  for (const linesPerTurn of [1, 2, 7, 1000]) {
    const got: PrometheusSkip[] = [];
    let pauses = 0;
    const rendered = await renderPrometheusAsync(metrics, {
      ...skips(got),
      linesPerTurn,
      pause: () => Promise.resolve(void pauses++),
    });
    assert.equal(rendered, text);
    assert.deepEqual(got, expected);
    assert.ok(linesPerTurn > 20 || pauses > 0, `no pause with ${linesPerTurn} lines a turn`);
  }
});
