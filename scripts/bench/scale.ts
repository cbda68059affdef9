/**
 * `scale`: the master under many workers and many series. Synthetic workers
 * (`fixtures/synthetic_worker.ts`, Bun, speaking the protocol by hand) send a
 * harvest of 1,000 or 10,000 counter series every second, 1, 8 or 64 of them
 * at once. After a warm-up, the master's CPU over a window (all its threads,
 * `/proc/PID/task/*\/schedstat`), its resident memory, and the time to render
 * `/metrics` (median of five scrapes). Targets: under 20% of a core at
 * 64 × 10,000, `/metrics` under 100 ms.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import type { Bench, BenchContext } from "./_context.ts";
import { masterArgv } from "./_forklift.ts";
import { cpuMs, freePort, sleep, start, stop } from "./_process.ts";
import type { Row } from "./_report.ts";
import { fmt, median } from "./_stats.ts";

const WINDOW_MS = 10_000;

function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  return kb / 1024;
}

async function readyWorkers(port: number): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/status`, {
      signal: AbortSignal.timeout(5000),
    });
    const doc = await res.json();
    return doc.workers.filter((w: { state: string }) => w.state === "ready").length;
  } catch {
    return 0;
  }
}

async function measure(ctx: BenchContext, workers: number, series: number, windowMs: number) {
  const metricsPort = await freePort();
  const proc = start([
    ...masterArgv(ctx, "binary"),
    "run",
    "-w",
    String(workers),
    "--no-inject",
    "--harvest-interval",
    "1",
    "--metrics-bind",
    `127.0.0.1:${metricsPort}`,
    "--",
    ctx.runtimes.bun,
    `${ctx.root}scripts/bench/fixtures/synthetic_worker.ts`,
  ], { cwd: ctx.root, env: { SERIES: String(series) }, deadlineMs: 600_000 });
  try {
    const t0 = Date.now();
    while ((await readyWorkers(metricsPort)) < workers) {
      if (Date.now() - t0 > 120_000) throw new Error(`${workers} workers not ready in 120 s`);
      await sleep(500);
    }
    await sleep(3_000);
    const pid = proc.pid;
    const cpu0 = cpuMs(pid);
    await sleep(windowMs);
    const cpu = (cpuMs(pid) - cpu0) / windowMs;
    const scrapes: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 5; i++) {
      const s = performance.now();
      bytes = (await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()).length;
      scrapes.push(performance.now() - s);
    }
    return { cpu, rss: rssMiB(pid), scrapeMs: median(scrapes), bytes };
  } finally {
    await stop(proc, "SIGTERM", 15_000);
  }
}

/** The `scale` benchmark. */
export const scale: Bench = {
  name: "scale",
  summary: "master CPU, memory and /metrics time with 1, 8, 64 workers × 1k, 10k series",
  async run(ctx) {
    const rows: Row[] = [];
    const windowMs = ctx.quick ? 3_000 : WINDOW_MS;
    for (const series of [1_000, 10_000]) {
      for (const workers of [1, 8, 64]) {
        ctx.log(`scale: ${workers} × ${series}`);
        const r = await measure(ctx, workers, series, windowMs);
        const big = workers === 64 && series === 10_000;
        rows.push({
          bench: "scale",
          metric: `master CPU, ${workers} workers × ${series} series, harvests every 1 s (RSS ${
            fmt(r.rss)
          } MiB)`,
          forklift: `${fmt(r.cpu * 100)}% of a core`,
          anchor: "target",
          versus: `${fmt(r.cpu * 100)}%`,
          target: big ? "≤ 20%" : "(info)",
          pass: big ? r.cpu <= 0.2 : null,
        });
        rows.push({
          bench: "scale",
          metric: `/metrics render, ${workers} workers × ${series} series (${
            fmt(r.bytes / 1024)
          } KiB)`,
          forklift: `${fmt(r.scrapeMs)} ms`,
          anchor: "target",
          versus: `${fmt(r.scrapeMs)} ms`,
          target: "≤ 100 ms",
          pass: r.scrapeMs <= 100,
        });
      }
    }
    return rows;
  },
};
