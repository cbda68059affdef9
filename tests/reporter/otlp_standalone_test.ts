import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cleanEnv, ROOT } from "../_helpers/cli.ts";
import { RUNTIMES, serverArgv } from "../_helpers/master.ts";
import { OtlpReceiver, type Received } from "../_helpers/otlp_receiver.ts";
import { standaloneOtlp } from "../../src/reporter/otlp_standalone.ts";

const JOB = `${ROOT}tests/fixtures/standalone_export.ts`;

/** Runs the batch-job fixture to its normal end (10 s at most); resolves to its exit code. */
function runJob(runtime: "deno" | "bun", env: Record<string, string>): Promise<number | null> {
  const [cmd, ...args] = serverArgv(runtime, JOB);
  const child = spawn(cmd, args, { env: cleanEnv(env), stdio: ["ignore", "inherit", "inherit"] });
  const deadline = setTimeout(() => child.kill("SIGKILL"), 10_000);
  return new Promise((resolve) =>
    child.on("exit", (code) => {
      clearTimeout(deadline);
      resolve(code);
    })
  );
}

function jobsDone(r: Received): Array<{ value: number; temporality: number }> {
  const metrics = r.body.resourceMetrics[0].scopeMetrics[0].metrics;
  const m = metrics.find((x: { name: string }) => x.name === "jobs.done");
  return (m?.sum?.dataPoints ?? []).map((p: { asDouble: number }) => ({
    value: p.asDouble,
    temporality: m.sum.aggregationTemporality,
  }));
}

for (const runtime of ["deno", "bun"] as const) {
  describe(`Standalone OTLP export on ${runtime}`, { skip: !RUNTIMES[runtime] }, () => {
    test(`Reporter exports a ${runtime} program's counts on a normal exit, with no master`, async () => {
      const r = new OtlpReceiver();
      const url = await r.listen();
      try {
        const code = await runJob(runtime, {
          OTEL_EXPORTER_OTLP_ENDPOINT: url,
          OTEL_SERVICE_NAME: "batch-job",
          OTEL_EXPORTER_OTLP_HEADERS: "x-team=mail%20ops",
        });
        assert.equal(code, 0);
        assert.equal(r.received.length, 1);
        const [got] = r.received;
        assert.equal(got.contentType, "application/json");
        assert.ok(got.valid, "not a valid OTLP/JSON request");
        assert.equal(got.headers["x-team"], "mail ops");
        assert.deepEqual(jobsDone(got), [{ value: 7, temporality: 1 }]);
        const resource = Object.fromEntries(
          got.body.resourceMetrics[0].resource.attributes.map((
            a: { key: string; value: Record<string, unknown> },
          ) => [a.key, Object.values(a.value)[0]]),
        );
        assert.equal(resource["service.name"], "batch-job");
        assert.equal(resource["process.runtime.name"], runtime);
      } finally {
        await r.close();
      }
    });

    test(`Reporter exports a ${runtime} program every OTEL_METRIC_EXPORT_INTERVAL, each delta once`, async () => {
      const r = new OtlpReceiver();
      const url = await r.listen();
      try {
        const code = await runJob(runtime, {
          OTEL_EXPORTER_OTLP_ENDPOINT: url,
          OTEL_METRIC_EXPORT_INTERVAL: "150",
          JOB_PAUSE_MS: "600",
        });
        assert.equal(code, 0);
        assert.ok(r.received.length >= 2, `${r.received.length} export(s)`);
        const total = r.received.flatMap(jobsDone).reduce((n, p) => n + p.value, 0);
        assert.equal(total, 7);
      } finally {
        await r.close();
      }
    });

    test(`Reporter on ${runtime} follows no redirect, keeps an endpoint's query a query, and refuses an interval no timer holds`, async () => {
      const elsewhere = new OtlpReceiver();
      const target = await elsewhere.listen();
      const r = new OtlpReceiver();
      const url = await r.listen();
      r.answers = [{ status: 307, headers: { location: `${target}/v1/metrics` } }];
      try {
        const code = await runJob(runtime, {
          OTEL_EXPORTER_OTLP_ENDPOINT: `${url}/base?tenant=a`,
          OTEL_EXPORTER_OTLP_HEADERS: "api-key=s3cret",
          // Beyond 2^31-1 ms a timer fires at once: this one must fall back to the default.
          OTEL_METRIC_EXPORT_INTERVAL: "3000000000",
          JOB_PAUSE_MS: "600",
        });
        assert.equal(code, 0);
        assert.equal(elsewhere.received.length, 0, "the export followed the redirect");
        assert.equal(r.received.length, 1, `${r.received.length} export(s) in 600 ms`);
        assert.equal(r.received[0].path, "/base/v1/metrics?tenant=a");
      } finally {
        await r.close();
        await elsewhere.close();
      }
    });
  });
}

describe("standaloneOtlp() durations", () => {
  const host = (env: Record<string, string>) => ({
    pid: 1,
    runtime: "deno/2.9.6",
    env: (name: string) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9", ...env })[name],
  });

  test("standaloneOtlp() reads OTEL_METRIC_EXPORT_INTERVAL as the settings do", () => {
    assert.equal(standaloneOtlp(host({ OTEL_METRIC_EXPORT_INTERVAL: "1500.5" }))!.intervalMs, 1501);
    // Text the settings refuse is refused here too: the default stands.
    for (const raw of ["0x10", "1e3", "-5", "0"]) {
      assert.equal(
        standaloneOtlp(host({ OTEL_METRIC_EXPORT_INTERVAL: raw }))!.intervalMs,
        60_000,
        raw,
      );
    }
  });
});
