/**
 * `dashboard`: what one open dashboard page costs the master. The binary
 * master runs two deno workers under a light steady load (20 requests a
 * second); its CPU (`utime + stime` from `/proc/PID/stat`) is read over a
 * window with no page open, then over a window with one page polling
 * `/dashboard.json?since=T` every second as the page does (the first poll
 * takes the whole history). The master samples its history once a second in
 * both windows: the difference is the page's own cost. Target: at most 1% of
 * one core.
 *
 * @module
 */
import type { Bench, BenchContext } from "./_context.ts";
import { allAnswering, startMaster } from "./_forklift.ts";
import { sleep, stop } from "./_process.ts";
import type { Row } from "./_report.ts";
import { fmt } from "./_stats.ts";
import { cpuTicks, ticksPerSecond } from "./idle.ts";

const TARGET = 0.01;
const SETTLE_MS = 3000;

/** Runs `work` until `signal` aborts, every `everyMs`. */
async function every(everyMs: number, signal: AbortSignal, work: () => Promise<void>) {
  while (!signal.aborted) {
    const t0 = performance.now();
    try {
      await work();
    } catch {
      // A failed poll is the next one's problem; the window goes on.
    }
    await sleep(Math.max(0, everyMs - (performance.now() - t0)));
  }
}

async function window(pid: number, ms: number): Promise<number> {
  const c0 = cpuTicks(pid);
  const t0 = performance.now();
  await sleep(ms);
  return (cpuTicks(pid) - c0) / ticksPerSecond() / ((performance.now() - t0) / 1000);
}

async function measure(ctx: BenchContext, windowMs: number) {
  const m = await startMaster(ctx, { runtime: "deno", workers: 2 });
  const load = new AbortController();
  try {
    await allAnswering(m, 2);
    const loading = every(50, load.signal, async () => {
      await (await fetch(`http://127.0.0.1:${m.port}/`)).arrayBuffer();
    });
    await sleep(SETTLE_MS);
    const none = await window(m.proc.pid, windowMs);
    const page = new AbortController();
    let since = 0;
    let bytes = 0;
    const base = `http://127.0.0.1:${m.metricsPort}`;
    for (const path of ["/", "/dashboard.js", "/dashboard.css"]) {
      await (await fetch(base + path)).arrayBuffer();
    }
    const polling = every(1000, page.signal, async () => {
      const text = await (await fetch(`${base}/dashboard.json?since=${since}`)).text();
      bytes += text.length;
      const t = JSON.parse(text).series.t as number[];
      if (t.length > 0) since = t[t.length - 1];
    });
    const open = await window(m.proc.pid, windowMs);
    page.abort();
    await polling;
    load.abort();
    await loading;
    return { none, open, bytesPerSecond: bytes / (windowMs / 1000) };
  } finally {
    load.abort();
    await stop(m.proc, "SIGTERM", 5000);
  }
}

/** The `dashboard` benchmark. */
export const dashboard: Bench = {
  name: "dashboard",
  summary: "master CPU with one dashboard page open vs none",
  async run(ctx) {
    const windowMs = ctx.quick ? 10_000 : 60_000;
    ctx.log(`dashboard: two windows of ${windowMs / 1000} s`);
    const r = await measure(ctx, windowMs);
    const diff = r.open - r.none;
    const pct = (x: number) => `${fmt(x * 100, 2)}% of a core`;
    const row: Row = {
      bench: "dashboard",
      metric: `master CPU, binary (bun), 2 deno workers at 20 req/s, ${
        windowMs / 1000
      } s with one page polling /dashboard.json every second (${
        fmt(r.bytesPerSecond / 1024, 1)
      } KiB/s) vs ${windowMs / 1000} s with none`,
      forklift: pct(r.open),
      anchor: `no page ${pct(r.none)}`,
      versus: `${diff >= 0 ? "+" : "−"}${fmt(Math.abs(diff) * 100, 2)}%`,
      target: "≤ +1% of a core",
      pass: diff <= TARGET,
    };
    return [row];
  },
};
