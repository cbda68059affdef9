import { freePort } from "../_helpers/ports.ts";
import { typedConfig } from "../../src/config/config.ts";
import { test } from "node:test";
import assert from "node:assert/strict";
import { logger } from "../../src/log/logging.ts";
import { MasterTelemetry } from "../../src/master/telemetry.ts";
import type { MetricDelta } from "../../src/protocol/messages.ts";
import { recordingLog } from "../_helpers/recording_log.ts";
import { OtlpReceiver } from "../_helpers/otlp_receiver.ts";
import { sleep, waitFor } from "../_helpers/master.ts";

/** Telemetry of a running master with `workers` ready workers, logging to `log`. */
function telemetry(
  log: ReturnType<typeof logger> = logger("telemetry-test"),
  workers = 1,
  config = typedConfig({}),
): MasterTelemetry {
  return new MasterTelemetry({
    serviceName: "api",
    config,
    log,
    snapshot: () => ({
      phase: "running",
      workerCount: workers,
      readyWorkers: workers,
      restarts: {},
      workers: [],
    }),
    onError: () => {},
  });
}

const counter = (name: string, value: number): MetricDelta => ({
  name,
  kind: "counter",
  points: [{ attributes: {}, value }],
});

function sample(text: string, name: string): string | undefined {
  return new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1];
}

test("MasterTelemetry.metricsText() keeps a Prometheus name for the metric seen first, on every scrape", () => {
  const t = telemetry();
  t.harvest({ id: 1, slot: 1 }, {
    type: "harvest",
    v: 1,
    seq: 1,
    metrics: [counter("jobs.done", 1000)],
  });
  assert.equal(sample(t.metricsText(), "jobs_done_total"), "1000");
  // Names that map to the same Prometheus name and sort before it arrive later.
  t.harvest({ id: 2, slot: 2 }, {
    type: "harvest",
    v: 1,
    seq: 1,
    metrics: [counter("jobs_done", 1)],
  });
  t.harvest({ id: 2, slot: 2 }, {
    type: "harvest",
    v: 1,
    seq: 2,
    metrics: [counter("jobs-done", 2)],
  });
  for (let scrape = 0; scrape < 3; scrape++) {
    assert.equal(sample(t.metricsText(), "jobs_done_total"), "1000");
  }
});

test("MasterTelemetry.metricsText() counts a point left out once, however often it is scraped", () => {
  const t = telemetry();
  t.harvest({ id: 1, slot: 1 }, {
    type: "harvest",
    v: 1,
    seq: 1,
    metrics: [counter("jobs.done", 5), counter("jobs_done", 1)],
  });
  const dropped = () =>
    sample(t.metricsText(), 'forklift_dropped_points_total\\{reason="exposition"\\}');
  t.metricsText();
  t.metricsText();
  assert.equal(dropped(), "1");
  t.harvest({ id: 1, slot: 1 }, {
    type: "harvest",
    v: 1,
    seq: 2,
    metrics: [{
      name: "jobs_done",
      kind: "counter",
      points: [{ attributes: { q: "x" }, value: 1 }],
    }],
  });
  assert.equal(dropped(), "1", "a series of its own is shown, not dropped");
  assert.match(t.metricsText(), /^jobs_done_total\{q="x"\} 1$/m);
  t.harvest({ id: 1, slot: 1 }, {
    type: "harvest",
    v: 1,
    seq: 3,
    metrics: [counter("jobs-done", 7)],
  });
  assert.equal(dropped(), "2", "a second point left out counts once more");
  assert.equal(dropped(), "2");
});

test("MasterTelemetry.harvest() keeps the honest workers' counts when another declares the name anew, and logs one line per worker per 10 s", () => {
  const log = recordingLog();
  const t = telemetry(log, 2);
  const honest = { id: 1, slot: 1 };
  const hostile = { id: 2, slot: 2 };
  let seq = 0;
  const send = (w: typeof honest, metric: MetricDelta) =>
    t.harvest(w, { type: "harvest", v: 1, seq: ++seq, metrics: [metric] });
  send(honest, counter("jobs.done", 10));
  for (let i = 0; i < 50; i++) {
    send(hostile, { ...counter("jobs.done", 1), unit: `u${i}`.padEnd(60, "x") });
    send(hostile, { ...counter("jobs.done", 1), kind: "gauge" });
  }
  send(honest, counter("jobs.done", 5));
  const text = t.metricsText();
  assert.equal(sample(text, "jobs_done_total"), "15");
  const conflicts = log.lines.filter((l) => l.includes("jobs.done"));
  assert.equal(conflicts.length, 1, conflicts.join("\n"));
  assert.match(
    conflicts[0],
    /^warn: Holding the points of jobs\.done from worker 2, declared counter u0x+, until no worker reports it as counter $/,
  );
  assert.ok(log.lines.join("").length < 1000);
});

test("MasterTelemetry.forget() shows a name on its new declaration once the last worker on the old one exits, and says so", () => {
  const log = recordingLog();
  const t = telemetry(log, 1);
  const old = { id: 1, slot: 1 };
  const next = { id: 2, slot: 1 };
  t.harvest(old, { type: "harvest", v: 1, seq: 1, metrics: [counter("jobs.done", 10)] });
  t.harvest(next, {
    type: "harvest",
    v: 1,
    seq: 1,
    metrics: [{ ...counter("jobs.done", 3), unit: "s" }],
  });
  assert.equal(sample(t.metricsText(), "jobs_done_total"), "10");
  t.forget(old);
  const text = t.metricsText();
  assert.equal(sample(text, "jobs_done_seconds_total"), "3");
  assert.doesNotMatch(text, /^jobs_done_total/m);
  assert.equal(sample(text, `forklift_dropped_points_total\\{reason="conflict"\\}`), "0");
  assert.match(
    log.lines.at(-1)!,
    /^warn: Metric jobs\.done now declared as counter s \(the last worker with the old declaration counter {2}exited\)$/,
  );
});

test("MasterTelemetry.harvest() lets no number of empty instruments lock a later name out", () => {
  const t = telemetry();
  const names = Array.from({ length: 40_000 }, (_, i) => ({
    name: `ghost.${i}`,
    kind: "counter" as const,
    points: [],
  }));
  t.harvest({ id: 1, slot: 1 }, { type: "harvest", v: 1, seq: 1, metrics: names });
  t.harvest({ id: 1, slot: 1 }, {
    type: "harvest",
    v: 1,
    seq: 2,
    metrics: [counter("jobs.done", 3)],
  });
  const text = t.metricsText();
  assert.equal(sample(text, "jobs_done_total"), "3");
  assert.doesNotMatch(text, /ghost/);
});

test("MasterTelemetry.metricsText() counts dropped points by reason", () => {
  const t = telemetry();
  const w = { id: 1, slot: 1 };
  t.harvest(w, {
    type: "harvest",
    v: 1,
    seq: 1,
    dropped: 3,
    refused: 1,
    metrics: [counter("jobs.done", 1), counter("jobs_done", 1)],
  });
  t.harvest(w, {
    type: "harvest",
    v: 1,
    seq: 2,
    metrics: [{ ...counter("jobs.done", 1), kind: "gauge" }, {
      ...counter("jobs.done", 1),
      kind: "updown",
    }],
  });
  t.invalid(w);
  const text = t.metricsText();
  const reason = (r: string) => sample(text, `forklift_dropped_points_total\\{reason="${r}"\\}`);
  assert.equal(reason("worker"), "2");
  assert.equal(reason("invalid"), "2");
  assert.equal(reason("conflict"), "1");
  assert.equal(reason("exposition"), "1");
  assert.equal(reason("instrument_limit"), "0");
  assert.equal(reason("memory_limit"), "0");
  assert.equal(t.status().totals.dropped_points, 6);
});

test("MasterTelemetry.reconfigure() names the service anew in /status", async () => {
  const t = telemetry();
  assert.equal(t.status().service_name, "api");
  await t.reconfigure(typedConfig({ service_name: "shop" }), "shop");
  assert.equal(t.status().service_name, "shop");
  await t.close(100);
});

test("MasterTelemetry.reconfigure() exports to the new endpoint and counts exports across exporters", async () => {
  const [a, b] = [new OtlpReceiver(), new OtlpReceiver()];
  const config = async (r: OtlpReceiver) =>
    typedConfig({ otlp_endpoint: await r.listen(), export_interval: 0.1 });
  const t = telemetry(undefined, 1, await config(a));
  try {
    t.startExport();
    await waitFor("an export to the first endpoint", () => a.accepted.length >= 2);
    await t.reconfigure(await config(b), "api");
    await waitFor("an export to the new endpoint", () => b.accepted.length >= 2);
    const fromA = a.accepted.length;
    await sleep(300);
    assert.equal(a.accepted.length, fromA, "the old exporter still runs");
    await t.close(500);
    // Every export either exporter made, the final one too: the counter never went back.
    const exports = Number(sample(t.metricsText(), "forklift_otlp_exports_total"));
    assert.equal(exports, a.accepted.length + b.accepted.length);
  } finally {
    await t.close(500);
    await a.close();
    await b.close();
  }
});

test("MasterTelemetry.reconfigure() applies a new metrics_memory_limit to the series that come next", async () => {
  // 20 instruments of 1,000 series each: several MiB of state, under the default 16 MiB.
  const big = (seq: number, prefix: string) => ({
    type: "harvest" as const,
    v: 1,
    seq,
    metrics: Array.from({ length: 20 }, (_, i) => ({
      name: `${prefix}.series${i}`,
      kind: "counter" as const,
      points: Array.from({ length: 1_000 }, (_, j) => ({ attributes: { id: `s${j}` }, value: 1 })),
    })),
  });
  const memoryDrops = (t: MasterTelemetry) =>
    Number(sample(t.metricsText(), `forklift_dropped_points_total\\{reason="memory_limit"\\}`));
  const t = telemetry();
  t.harvest({ id: 1, slot: 1 }, big(1, "before"));
  assert.equal(memoryDrops(t), 0);
  await t.reconfigure(typedConfig({ metrics_memory_limit: 1 }), "api");
  t.harvest({ id: 1, slot: 1 }, big(2, "after"));
  assert.ok(memoryDrops(t) > 0, "the new limit was not applied");
  await t.close(100);
});

test("MasterTelemetry.reconfigure() asks the running endpoint for the new metrics_token", async () => {
  const bind = `127.0.0.1:${await freePort()}`;
  const t = telemetry(undefined, 1, typedConfig({ metrics_token: "first", metrics_bind: bind }));
  try {
    const { port } = await t.serve(bind);
    const status = async (token: string) => {
      const r = await fetch(`http://127.0.0.1:${port}/metrics`, {
        headers: { authorization: `Bearer ${token}` },
      });
      await r.body?.cancel();
      return r.status;
    };
    assert.equal(await status("first"), 200);
    await t.reconfigure(typedConfig({ metrics_token: "second", metrics_bind: bind }), "api");
    assert.deepEqual([await status("first"), await status("second")], [401, 200]);
  } finally {
    await t.close(100);
  }
});

test("MasterTelemetry.metricsTextAsync() lets harvests in while 10,000 series render, and shows the aggregate as of the scrape", async () => {
  const t = telemetry();
  // Ten instruments of 1,000 series: one holds at most 2,000.
  const metrics: MetricDelta[] = Array.from({ length: 10 }, (_, k) => ({
    name: `app.hits.${k}`,
    kind: "counter",
    points: Array.from({ length: 1000 }, (_, i) => ({ attributes: { i }, value: 1 })),
  }));
  t.harvest({ id: 1, slot: 1 }, { type: "harvest", v: 1, seq: 1, metrics });
  const expected = t.metricsText();
  let done = false;
  let harvestedWhileRendering = false;
  const scrape = t.metricsTextAsync().finally(() => done = true);
  // Shares the render under way rather than starting another.
  assert.equal(t.metricsTextAsync(), t.metricsTextAsync());
  setTimeout(() => {
    harvestedWhileRendering = !done;
    t.harvest({ id: 1, slot: 1 }, {
      type: "harvest",
      v: 1,
      seq: 2,
      metrics: [counter("app.late", 1)],
    });
  }, 0);
  const text = await scrape;
  assert.ok(harvestedWhileRendering, "the harvest waited for the whole render");
  // The workers' part is the snapshot taken when the scrape began; the
  // master's own part, rendered last, counts the harvest merged meanwhile.
  assert.equal(sample(text, "app_late_total"), undefined);
  assert.equal(sample(text, "forklift_harvests_total"), "2");
  assert.equal(
    text.replace(/^forklift_harvests_total .*$/m, ""),
    expected.replace(/^forklift_harvests_total .*$/m, ""),
  );
  assert.equal(sample(t.metricsText(), "app_late_total"), "1");
});
