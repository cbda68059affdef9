import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { cleanEnv, ROOT } from "../_helpers/cli.ts";
import { Browser, NEEDS_CHROMIUM } from "../_helpers/chromium.ts";
import { freePort, Master, serverArgv, sleep, waitFor } from "../_helpers/master.ts";
import { testRuntime } from "../_helpers/runtime.ts";
import { startMetricsServer } from "../../src/export/http_server.ts";

const APP = `${ROOT}tests/fixtures/master/app.ts`;
const runtime = testRuntime();
/** Where the screenshots go: CI keeps this directory (it is ignored by git). */
const SHOTS = `${ROOT}test-results/dashboard`;

/** Requests to the app until `signal` aborts, one after another, one in five a slow one. */
async function load(port: number, signal: AbortSignal): Promise<void> {
  let i = 0;
  while (!signal.aborted) {
    const path = i++ % 5 === 4 ? "/slow?ms=30" : "/";
    try {
      await (await fetch(`http://127.0.0.1:${port}${path}`, { signal })).arrayBuffer();
    } catch {
      // A request cut by a reload or by the end of the test.
    }
    await sleep(25);
  }
}

test(
  "dashboard page draws live charts, one row per worker and a HUP, loading nothing from elsewhere",
  {
    skip: NEEDS_CHROMIUM,
    timeout: 60_000,
  },
  async () => {
    const port = await freePort();
    const m = new Master(
      [
        "-w",
        "2",
        "--harvest-interval",
        "0.5",
        "--metrics-bind",
        "127.0.0.1:0",
        "--",
        ...serverArgv(runtime, APP),
      ],
      { env: cleanEnv({ PORT: String(port) }), deadlineMs: 55_000 },
    );
    const stop = new AbortController();
    let browser: Browser | undefined;
    let loading: Promise<void> | undefined;
    try {
      await m.waitLog(/Serving metrics at/);
      await m.waitReady(2);
      loading = load(port, stop.signal);
      browser = await Browser.launch();
      const b = browser;
      const origin = `http://127.0.0.1:${m.metricsPort}`;
      await b.send("Page.navigate", { url: `${origin}/` });
      const drawn = () =>
        b.evaluate<{ canvases: number; painted: number[]; rows: number; requests: number }>(
          `(() => {
        const canvases = [...document.querySelectorAll(".chart canvas")];
        // Pixels with any ink: the axes, the grid and the lines.
        const painted = canvases.map((c) => {
          const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
          return n;
        });
        const m = /([0-9]+) requests/.exec(document.getElementById("summary").textContent);
        return {
          canvases: canvases.length,
          painted,
          rows: document.querySelectorAll("#workers tbody tr").length,
          requests: m ? Number(m[1]) : -1,
        };
      })()`,
        );
      const first = await waitFor(
        "charts drawn with traffic",
        async () => {
          const d = await drawn();
          return d.canvases === 2 && d.painted.every((n) => n > 500) && d.requests > 0
            ? d
            : undefined;
        },
        15_000,
        200,
      );
      assert.equal(first.rows, 2, "one row per worker");
      mkdirSync(SHOTS, { recursive: true });
      const shot1 = await b.screenshot();
      writeFileSync(`${SHOTS}/${runtime}-1.png`, shot1);
      await sleep(2_500);
      const second = await drawn();
      const shot2 = await b.screenshot();
      writeFileSync(`${SHOTS}/${runtime}-2.png`, shot2);
      assert.ok(second.requests > first.requests, `${first.requests} → ${second.requests}`);
      assert.notDeepEqual(shot1, shot2, "the two screenshots differ");
      const legend = await b.evaluate<string>(
        `document.querySelector("#rate-chart .u-legend").textContent`,
      );
      for (const c of ["2xx", "3xx", "4xx", "5xx"]) assert.ok(legend.includes(c), legend);
      const now = await b.evaluate<string>(`document.getElementById("rate-now").textContent`);
      assert.match(now, /2xx [0-9.]+/);

      m.signal("SIGHUP");
      await waitFor(
        "a reload on the timeline",
        () => b.evaluate<boolean>(`document.querySelector("#timeline li.reload") !== null`),
        15_000,
        200,
      );
      await waitFor(
        "two workers again",
        async () =>
          (await b.evaluate<number>(`document.querySelectorAll("#workers tbody tr").length`)) === 2,
      );
      writeFileSync(`${SHOTS}/${runtime}-reload.png`, await b.screenshot());

      // Every request the page made went to the endpoint it came from.
      const elsewhere = b.requests.filter((u) =>
        !u.startsWith(`${origin}/`) && !u.startsWith("data:")
      );
      assert.deepEqual(elsewhere, []);
      assert.ok(b.requests.some((u) => u.startsWith(`${origin}/dashboard.json?since=`)));
      assert.deepEqual(b.errors, []);
    } finally {
      stop.abort();
      await loading;
      await browser?.close();
      for (const pid of await m.readyPids().catch(() => [])) m.workerPids.add(pid);
      await m.cleanup();
    }
  },
);

test(
  "dashboard page shows a worker's CPU, memory, heap, loop delay and active requests when /status has them, – when not",
  {
    skip: NEEDS_CHROMIUM,
    timeout: 30_000,
  },
  async () => {
    const now = Date.now();
    const worker = (slot: number, extra: Record<string, unknown>) => ({
      slot,
      pid: 100 + slot,
      generation: 1,
      state: "ready",
      spawned_at: new Date(now - 90_000).toISOString(),
      requests: 7,
      restarts: 0,
      ...extra,
    });
    const status = {
      pid: 1,
      ready: true,
      version: "0",
      uptime_s: 90,
      service_name: "api",
      workers: [
        worker(1, {
          cpu: 0.25,
          memory_bytes: 64 * 1024 * 1024,
          heap_used_bytes: 10 * 1024 * 1024,
          heap_limit_bytes: 2048 * 1024 * 1024,
          loop_delay_p99_seconds: 0.012,
          loop_delay_max_seconds: 0.5,
          active_requests: 3,
        }),
        worker(2, { cpu: null, memory_bytes: null, active_requests: null }),
      ],
      totals: { workers: 2, requests: 14, restarts: 0 },
    };
    const server = await startMetricsServer({
      bind: "127.0.0.1:0",
      metrics: () => "",
      status: () => status,
      dashboard: () => ({
        now,
        status,
        series: {
          t: [],
          r2xx: [],
          r3xx: [],
          r4xx: [],
          r5xx: [],
          p50: [],
          p90: [],
          p99: [],
          slots: {},
        },
        events: [],
        otlp: null,
        settings: {},
      }),
    });
    let browser: Browser | undefined;
    try {
      browser = await Browser.launch();
      const b = browser;
      await b.send("Page.navigate", { url: `http://127.0.0.1:${server.address.port}/` });
      const rows = await waitFor(
        "two rows",
        async () => {
          const r = await b.evaluate<string[][]>(
            `[...document.querySelectorAll("#workers tbody tr")].map((tr) => [...tr.cells].map((c) => c.textContent))`,
          );
          return r.length === 2 ? r : undefined;
        },
        15_000,
        100,
      );
      // Slot, PID, State, Gen, CPU, Memory, Heap, Loop delay, Uptime, Requests, Active, Restarts.
      assert.deepEqual(rows[0].slice(4, 8), [
        "25.0 %",
        "64.0 MiB",
        "10.0 MiB / 2.0 GiB",
        "12.0 ms / 500.0 ms",
      ]);
      assert.deepEqual(rows[0].slice(8, 12), ["90 s", "7", "3", "0"]);
      assert.deepEqual(rows[1].slice(4, 8), ["–", "–", "–", "–"]);
      assert.equal(rows[1][10], "–");
      assert.deepEqual(b.errors, []);
    } finally {
      await browser?.close();
      await server.close();
    }
  },
);
