import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { cleanEnv, ROOT } from "../_helpers/cli.ts";
import { freePort, getFresh, Master, RUNTIMES, serverArgv, waitFor } from "../_helpers/master.ts";
import { OtlpReceiver, type Received } from "../_helpers/otlp_receiver.ts";
import { testRuntime } from "../_helpers/runtime.ts";

const APP = `${ROOT}tests/fixtures/master/app.ts`;
const DURATION = "http.server.request.duration";

// deno-lint-ignore no-explicit-any
type Json = any;

function metricsOf(r: Received): Json[] {
  return r.body.resourceMetrics?.[0]?.scopeMetrics?.[0]?.metrics ?? [];
}

/** Requests counted in one export's request-duration histogram. */
function requestsIn(r: Received | undefined): number {
  if (r === undefined) return 0;
  const m = metricsOf(r).find((x) => x.name === DURATION);
  return (m?.histogram?.dataPoints ?? []).reduce((n: number, p: Json) => n + Number(p.count), 0);
}

function resourceOf(r: Received): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of r.body.resourceMetrics[0].resource.attributes) {
    out[key] = Object.values(value)[0];
  }
  return out;
}

async function start(runtime: "deno" | "bun", url: string, flags: string[] = []) {
  const port = await freePort();
  const m = new Master([
    "-w",
    "2",
    "--harvest-interval",
    "0.3",
    "--export-interval",
    "0.5",
    "--metrics-bind",
    "127.0.0.1:0",
    "--otlp-endpoint",
    url,
    ...flags,
    "--",
    ...serverArgv(runtime, APP),
  ], { env: cleanEnv({ PORT: String(port) }), deadlineMs: 45_000 });
  await m.waitReady(2);
  return { m, port };
}

async function serve(port: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) assert.equal((await getFresh(port, "/"))?.status, 200);
}

for (const runtime of ["deno", "bun"] as const) {
  describe(`OTLP export with ${runtime} workers`, { skip: !RUNTIMES[runtime] }, () => {
    test(`forklift run exports every ${runtime} request to an OTLP receiver, and once more on stop`, async () => {
      const r = new OtlpReceiver();
      const url = await r.listen();
      const { m, port } = await start(runtime, url);
      try {
        await serve(port, 40);
        await waitFor("40 requests exported", () => requestsIn(r.accepted.at(-1)) === 40, 8_000);
        const first = r.accepted[0];
        assert.equal(first.contentType, "application/x-protobuf");
        const resource = resourceOf(r.accepted.at(-1)!);
        assert.equal(resource["service.name"], "app");
        assert.equal(resource["process.pid"], String(m.pid));
        assert.equal(resource["process.runtime.name"], runtime);
        assert.equal(typeof resource["host.name"], "string");
        assert.equal(typeof resource["service.instance.id"], "string");
        assert.deepEqual(first.body.resourceMetrics[0].scopeMetrics[0].scope.name, "forklift");
        // Cumulative: every export's series start at the master's start.
        const starts = new Set(
          r.accepted.flatMap((x) =>
            metricsOf(x).flatMap((mm) =>
              (mm.sum ?? mm.histogram)?.dataPoints?.map((p: Json) => p.startTimeUnixNano) ?? []
            )
          ),
        );
        assert.equal(starts.size, 1, [...starts].join());
        const names = metricsOf(r.accepted.at(-1)!).map((x) => x.name);
        assert.ok(names.includes("forklift.workers"), names.join());
        await serve(port, 5);
        const before = r.received.length;
        m.signal("SIGTERM");
        assert.equal((await m.exited).code, 0, m.stderr);
        assert.ok(r.received.length > before, "no final export");
        assert.equal(requestsIn(r.received.at(-1)!), 45);
        // Sent when no worker is left, the final export still names the same service.
        assert.deepEqual(resourceOf(r.received.at(-1)!), resource);
        assert.ok(r.received.every((x) => x.valid), "a payload the OTLP definitions do not take");
      } finally {
        await m.cleanup();
        await r.close();
      }
    });
  });
}

const ONE = RUNTIMES.bun ? "bun" : "deno";

/** The runtime of the master under test: the one running the tests. */
const MASTER = testRuntime();

describe("OTLP export through an outage", { skip: !RUNTIMES.deno && !RUNTIMES.bun }, () => {
  test("forklift run loses nothing while the collector answers 503, backs off, and sends no storm", async () => {
    const r = new OtlpReceiver();
    const url = await r.listen();
    r.answers = [{ status: 503 }, { status: 503 }];
    const { m, port } = await start(ONE, url);
    try {
      await serve(port, 30);
      await waitFor(
        "30 requests exported",
        () => requestsIn(r.accepted.at(-1)) === 30,
        10_000,
      );
      const [a, b, c] = r.received;
      assert.deepEqual([a.status, b.status, c.status], [503, 503, 200]);
      assert.ok(b.at - a.at >= 750, `first retry after ${b.at - a.at | 0} ms`);
      assert.ok(c.at - b.at >= 1_500, `second retry after ${c.at - b.at | 0} ms`);
      console.log(
        `OTLP outage (${ONE}): served 30, exported ${requestsIn(c)}, retries after ${
          b.at - a.at | 0
        } and ${c.at - b.at | 0} ms`,
      );
      const text = await m.metrics();
      assert.match(text, /^forklift_otlp_retries_total 2$/m);
      assert.match(text, /^forklift_otlp_failures_total 2$/m);
      assert.match(text, /^forklift_otlp_sent_bytes_total [1-9]\d*$/m);
      assert.equal((m.stderr.match(/OTLP export to .* failed/g) ?? []).length, 1, m.stderr);
    } finally {
      await m.cleanup();
      await r.close();
    }
  });

  test("forklift run drops one refused batch with one warning and goes on", async () => {
    const r = new OtlpReceiver();
    const url = await r.listen();
    r.answers = [{ status: 400 }];
    const { m, port } = await start(ONE, url);
    try {
      await serve(port, 10);
      await waitFor(
        "10 requests exported",
        () => requestsIn(r.accepted.at(-1)) === 10,
        8_000,
      );
      assert.equal(r.received[0].status, 400);
      assert.equal((m.stderr.match(/refused \(HTTP 400\)/g) ?? []).length, 1, m.stderr);
      assert.match(await m.metrics(), /^forklift_otlp_dropped_batches_total 1$/m);
    } finally {
      await m.cleanup();
      await r.close();
    }
  });

  test("forklift run's delta exports (JSON, gzip) add up to the requests served", async () => {
    const r = new OtlpReceiver();
    const url = await r.listen();
    const { m, port } = await start(ONE, url, [
      "--otlp-temporality",
      "delta",
      "--otlp-protocol",
      "http/json",
      "--otlp-compression",
      "gzip",
    ]);
    const total = () => r.accepted.reduce((n, x) => n + requestsIn(x), 0);
    try {
      await serve(port, 25);
      await waitFor("25 requests in deltas", () => total() === 25, 8_000);
      await serve(port, 15);
      m.signal("SIGTERM");
      await m.exited;
      assert.equal(total(), 40);
      const last = r.accepted.at(-1)!;
      assert.equal(last.contentType, "application/json");
      assert.equal(last.headers["content-encoding"], "gzip");
      const hist = metricsOf(r.accepted.find((x) => requestsIn(x) > 0)!).find((x) =>
        x.name === DURATION
      );
      assert.equal(hist.histogram.aggregationTemporality, 1);
      assert.ok(r.received.every((x) => x.valid), "a payload the OTLP definitions do not take");
    } finally {
      await m.cleanup();
      await r.close();
    }
  });
});

/** How long the master took to exit from now, failing after `limitMs`. */
async function exitWithin(
  m: Master,
  limitMs: number,
): Promise<{ ms: number; code: number | null }> {
  const t0 = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`master still running ${limitMs} ms after SIGTERM:\n${m.stderr}`)),
      limitMs,
    );
  });
  try {
    const { code } = await Promise.race([m.exited, late]);
    return { ms: performance.now() - t0, code };
  } finally {
    clearTimeout(timer);
  }
}

describe("OTLP export during a graceful stop", { skip: !RUNTIMES.deno && !RUNTIMES.bun }, () => {
  test("forklift run exits at once when SIGTERM meets an export told to retry in 120 s, and still sends the final one", async () => {
    const r = new OtlpReceiver();
    const url = await r.listen();
    const { m, port } = await start(ONE, url, ["--graceful-timeout", "3"]);
    try {
      await serve(port, 12);
      await waitFor("12 requests exported", () => requestsIn(r.accepted.at(-1)) === 12, 8_000);
      const before = r.received.length;
      r.answers = [{ status: 503, headers: { "retry-after": "120" }, delayMs: 800 }];
      await waitFor("an export in flight", () => r.received.length > before, 3_000);
      m.signal("SIGTERM");
      const { ms, code } = await exitWithin(m, 15_000);
      console.log(
        `SIGTERM during a Retry-After: 120 export (${MASTER} master, ${ONE} workers): exited in ${
          ms | 0
        } ms`,
      );
      assert.equal(code, 0, m.stderr);
      assert.ok(ms < 3_000 + 2_000, `exited ${ms | 0} ms after SIGTERM`);
      const last = r.received.at(-1)!;
      assert.equal(last.status, 200);
      assert.equal(requestsIn(last), 12);
      assert.doesNotMatch(m.stderr, /abandoned/);
    } finally {
      await m.cleanup();
      await r.close();
    }
  });

  test("forklift run abandons the final export to a collector that hangs once graceful_timeout is up, and says so", async () => {
    const r = new OtlpReceiver();
    const url = await r.listen();
    const { m, port } = await start(ONE, url, [
      "--graceful-timeout",
      "2",
      "--otlp-timeout",
      "30",
    ]);
    try {
      await serve(port, 5);
      await waitFor("5 requests exported", () => requestsIn(r.accepted.at(-1)) === 5, 8_000);
      const before = r.received.length;
      r.answers = Array.from({ length: 5 }, () => ({ status: 200, delayMs: 60_000 }));
      await waitFor("an export in flight", () => r.received.length > before, 3_000);
      m.signal("SIGTERM");
      const { ms, code } = await exitWithin(m, 15_000);
      console.log(
        `SIGTERM with a hanging collector (${MASTER} master, ${ONE} workers): exited in ${
          ms | 0
        } ms`,
      );
      assert.equal(code, 0, m.stderr);
      assert.ok(ms < 2_000 + 2_000, `exited ${ms | 0} ms after SIGTERM`);
      assert.equal(
        (m.stderr.match(/Final OTLP export to .* abandoned after \d+ ms/g) ?? []).length,
        1,
        m.stderr,
      );
    } finally {
      await m.cleanup();
      await r.close();
    }
  });

  test("forklift run's whole stop stays within graceful_timeout: slow drains leave the final export what is left", async () => {
    const r = new OtlpReceiver();
    const url = await r.listen();
    const { m, port } = await start(ONE, url, [
      "--graceful-timeout",
      "3",
      "--otlp-timeout",
      "30",
    ]);
    try {
      await serve(port, 4);
      await waitFor("4 requests exported", () => requestsIn(r.accepted.at(-1)) === 4, 8_000);
      r.answers = Array.from({ length: 10 }, () => ({ status: 200, delayMs: 60_000 }));
      // A request the workers finish while they drain: 2.5 s of the 3 s.
      const slow = fetch(`http://127.0.0.1:${port}/slow?ms=2500`).then((res) => res.status);
      await new Promise((resolve) => setTimeout(resolve, 300));
      m.signal("SIGTERM");
      const { ms, code } = await exitWithin(m, 15_000);
      console.log(
        `SIGTERM with a 2.5 s request and a hanging collector (${MASTER} master, ${ONE} workers): exited in ${
          ms | 0
        } ms`,
      );
      assert.equal(code, 0, m.stderr);
      assert.equal(await slow, 200);
      assert.ok(ms < 3_000 + 1_500, `exited ${ms | 0} ms after SIGTERM`);
      assert.match(m.stderr, /Final OTLP export to .* abandoned after \d+ ms/);
    } finally {
      await m.cleanup();
      await r.close();
    }
  });
});

/** A process's resident memory now and at its peak, in MiB, from /proc. */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return { rss: kib("VmRSS") / 1024, peak: kib("VmHWM") / 1024 };
}

describe(
  "OTLP export to a collector that answers huge",
  { skip: !RUNTIMES.deno && !RUNTIMES.bun },
  () => {
    test("forklift run's memory stays bounded while each export is answered with 200 MB, and SIGTERM stops it", async () => {
      const r = new OtlpReceiver();
      const url = await r.listen();
      const { m, port } = await start(ONE, url, ["--graceful-timeout", "3"]);
      try {
        await serve(port, 8);
        await waitFor("8 requests exported", () => requestsIn(r.accepted.at(-1)) === 8, 8_000);
        const before = memoryOf(m.pid);
        const n = r.received.length;
        const huge = { status: 200, headers: { "content-type": "application/json" } };
        r.answers = Array.from({ length: 4 }, () => ({ ...huge, streamBytes: 200 * 2 ** 20 }));
        await waitFor("four huge answers", () => r.received.length >= n + 4, 15_000);
        const after = memoryOf(m.pid);
        console.log(
          `200 MB answers (${MASTER} master, ${ONE} workers): RSS ${
            before.rss.toFixed(0)
          } MiB before, peak ${after.peak.toFixed(0)} MiB after four; the collector got ${
            (r.streamed / 2 ** 20).toFixed(1)
          } MiB out`,
        );
        // Each answer read whole would add its 200 MB; a 64 KiB prefix adds nothing to see.
        assert.ok(after.peak - before.rss < 100, `peak ${after.peak} MiB from ${before.rss} MiB`);
        assert.ok(r.streamed < 4 * 50 * 2 ** 20, `${r.streamed} bytes taken`);
        m.signal("SIGTERM");
        const { ms, code } = await exitWithin(m, 10_000);
        assert.equal(code, 0, m.stderr);
        assert.ok(ms < 3_000 + 2_000, `exited ${ms | 0} ms after SIGTERM`);
      } finally {
        await m.cleanup();
        await r.close();
      }
    });
  },
);
