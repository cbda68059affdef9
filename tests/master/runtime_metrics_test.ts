import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ROOT } from "../_helpers/cli.ts";
import { assertPromtoolAccepts, NEEDS_PROMTOOL } from "../_helpers/promtool.ts";
import { getFresh, RUNTIMES, sleep, startWorkers, waitFor } from "../_helpers/master.ts";
import {
  HTTP_ACTIVE_REQUESTS as HTTP_ACTIVE,
  LOOP_PROBE_MS,
} from "../../src/reporter/runtime_metrics.ts";
import { OtlpReceiver } from "../_helpers/otlp_receiver.ts";

const APP = `${ROOT}tests/fixtures/master/health_app.ts`;

/** The samples of `name` on /metrics, by their `worker` label. */
function byWorker(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  const re = new RegExp(`^${name}\\{worker="(\\d+)"\\} (\\S+)$`, "gm");
  for (const m of text.matchAll(re)) out.set(m[1], Number(m[2]));
  return out;
}

for (const runtime of ["deno", "bun"] as const) {
  describe(`runtime metrics of ${runtime} workers`, { skip: !RUNTIMES[runtime] }, () => {
    test(`Reporter counts http.server.active_requests per ${runtime} worker slot, back to 0 once answered`, async () => {
      const { master: m, port } = await startWorkers(runtime, APP, { workers: 2 });
      try {
        const idle = await waitFor("both slots at 0", async () => {
          const a = byWorker(await m.metrics(), "http_server_active_requests");
          return a.size === 2 && [...a.values()].every((v) => v === 0) ? a : undefined;
        }, 5_000);
        assert.deepEqual([...idle.keys()].sort(), ["1", "2"]);
        const slow = Array.from({ length: 4 }, () => getFresh(port, "/slow?ms=2500"));
        const busy = await waitFor("4 requests in flight", async () => {
          const a = byWorker(await m.metrics(), "http_server_active_requests");
          return [...a.values()].reduce((x, y) => x + y, 0) === 4 ? a : undefined;
        }, 2_000);
        assert.ok([...busy.values()].every((v) => v >= 0), `per slot: ${[...busy]}`);
        for (const r of await Promise.all(slow)) assert.equal(r?.body, "slow");
        await waitFor("back to 0", async () => {
          const a = byWorker(await m.metrics(), "http_server_active_requests");
          return a.size === 2 && [...a.values()].every((v) => v === 0);
        }, 3_000);
      } finally {
        await m.cleanup();
      }
    });

    test(`RuntimeSampler shows a 100 ms block of a busy ${runtime} worker's loop as a delay maximum of at least 100 ms, and its heap`, async () => {
      const { master: m, port } = await startWorkers(runtime, APP, { workers: 1 });
      try {
        const text = await waitFor("heap figures", async () => {
          const t = await m.metrics();
          return byWorker(t, "v8js_memory_heap_used_bytes").size === 1 ? t : undefined;
        }, 5_000);
        const used = byWorker(text, "v8js_memory_heap_used_bytes").get("1")!;
        assert.ok(used > 100_000 && used < 2 ** 31, `heap used ${used}`);
        // JavaScriptCore has no heap limit, and only node:v8 tells V8's, whose
        // loading costs a worker more than all its runtime metrics may: none sent.
        assert.equal(byWorker(text, "v8js_memory_heap_limit_bytes").get("1"), undefined);
        const quiet = byWorker(text, "nodejs_eventloop_delay_max_seconds").get("1");
        assert.ok(quiet !== undefined && quiet < 0.1, `idle delay max ${quiet}`);

        // Requests in flight make the probe turn every LOOP_PROBE_MS, so a
        // block shows within that much: the app blocks 100 ms plus that.
        const slow = [getFresh(port, "/slow?ms=3000"), getFresh(port, "/slow?ms=3000")];
        await waitFor("requests in flight", async () => {
          return byWorker(await m.metrics(), "http_server_active_requests").get("1") === 2;
        }, 2_000);
        await sleep(50);
        assert.equal((await getFresh(port, `/block?ms=${100 + LOOP_PROBE_MS}`))?.body, "blocking");
        const max = await waitFor(
          "a delay of at least 100 ms",
          async () => {
            const v = byWorker(await m.metrics(), "nodejs_eventloop_delay_max_seconds").get("1");
            return v !== undefined && v >= 0.1 ? v : undefined;
          },
          3_000,
          20,
        );
        assert.ok(max < 1, `delay max ${max}`);
        await Promise.all(slow);
      } finally {
        await m.cleanup();
      }
    });
  });
}

describe("runtime metrics on /metrics", { skip: !RUNTIMES.deno && !RUNTIMES.bun }, () => {
  test(
    "RuntimeSampler's metrics pass promtool check metrics",
    { skip: NEEDS_PROMTOOL },
    async () => {
      const runtime = RUNTIMES.deno ? "deno" : "bun";
      const { master: m } = await startWorkers(runtime, APP, { workers: 2 });
      try {
        const text = await waitFor("every runtime metric", async () => {
          const t = await m.metrics();
          const names = [
            "v8js_memory_heap_used_bytes",
            "nodejs_eventloop_delay_p99_seconds",
            "http_server_active_requests",
          ];
          return names.every((n) => byWorker(t, n).size === 2) ? t : undefined;
        }, 5_000);
        assert.match(text, /^# TYPE http_server_active_requests gauge$/m);
        assert.match(text, /^# TYPE nodejs_eventloop_delay_max_seconds gauge$/m);
        assertPromtoolAccepts(text);
      } finally {
        await m.cleanup();
      }
    },
  );
});

describe("runtime metrics over OTLP", { skip: !RUNTIMES.deno && !RUNTIMES.bun }, () => {
  test("RuntimeSampler's metrics reach an OTLP collector, one series per worker slot", async () => {
    const runtime = RUNTIMES.bun ? "bun" : "deno";
    const r = new OtlpReceiver();
    const url = await r.listen();
    const { master: m } = await startWorkers(runtime, APP, {
      workers: 2,
      args: ["--export-interval", "0.5", "--otlp-endpoint", url, "--otlp-protocol", "http/json"],
    });
    try {
      // deno-lint-ignore no-explicit-any
      type Json = any;
      const slots = (metric: Json, field: "gauge" | "sum"): string[] =>
        (metric?.[field]?.dataPoints ?? []).map((p: Json) =>
          p.attributes.find((a: Json) => a.key === "worker")?.value.stringValue
        ).sort();
      const found = await waitFor("runtime metrics in an export", () => {
        for (const got of [...r.received].reverse()) {
          const metrics: Json[] = got.body.resourceMetrics?.[0]?.scopeMetrics?.[0]?.metrics ?? [];
          const by = (name: string) => metrics.find((x) => x.name === name);
          const heap = by("v8js.memory.heap.used");
          const delay = by("nodejs.eventloop.delay.max");
          const active = by(HTTP_ACTIVE);
          if (slots(heap, "gauge").length === 2 && slots(active, "sum").length === 2 && delay) {
            return { heap, delay, active };
          }
        }
        return undefined;
      }, 8_000);
      assert.deepEqual(slots(found.heap, "gauge"), ["1", "2"]);
      assert.equal(found.heap.unit, "By");
      assert.equal(found.delay.unit, "s");
      assert.equal(found.active.unit, "{request}");
      assert.equal(found.active.sum.isMonotonic ?? false, false);
    } finally {
      await m.cleanup();
      await r.close();
    }
  });
});
