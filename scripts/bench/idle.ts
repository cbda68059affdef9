/**
 * `idle`: the master's resident memory and CPU while its one worker idles,
 * against one idle hello-world worker of the master's own runtime as forklift
 * runs it (the binary is a Bun executable, so its anchor is a Bun worker), with
 * a bare server of that runtime for information. Memory is `VmRSS`
 * from `/proc/PID/status`; CPU is `utime + stime` from `/proc/PID/stat` over
 * the window, which spans at least one harvest from the worker. Memory is
 * read after the window and a scrape of `/metrics` and `/status`.
 * Targets: master RSS at most the idle worker's; master CPU about zero.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { startBare } from "./_bare.ts";
import type { Bench, BenchContext } from "./_context.ts";
import { allAnswering, type MasterVia, withMaster } from "./_forklift.ts";
import { sleep, stop } from "./_process.ts";
import type { Row } from "./_report.ts";
import type { RuntimeName } from "./_runtimes.ts";
import { fmt, median } from "./_stats.ts";

/** Above this share of one core over the window, the idle master is not "about zero". */
const CPU_TARGET = 0.005;
const SETTLE_MS = 2000;

/** Resident memory of `pid` in MiB: all of it, and its anonymous part (heaps, stacks). */
export function memMiB(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(status.match(new RegExp(`${field}:\\s+(\\d+)\\s+kB`))?.[1]);
  return { rss: kb("VmRSS") / 1024, anon: kb("RssAnon") / 1024 };
}

/** CPU time of `pid` (user + system) in clock ticks. */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of proc(5), counted from the state field (3).
  return Number(f[11]) + Number(f[12]);
}

export function ticksPerSecond(): number {
  const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  return Number(r.stdout?.trim()) || 100;
}

interface MasterIdle {
  masterRss: number;
  masterAnon: number;
  workerRss: number;
  cpuShare: number;
}

async function masterIdle(
  ctx: BenchContext,
  via: MasterVia,
  runtime: RuntimeName,
  windowMs: number,
): Promise<MasterIdle> {
  return await withMaster(ctx, { runtime, workers: 1, via }, async (m) => {
    const { pids } = await allAnswering(m, 1);
    await sleep(SETTLE_MS);
    const c0 = cpuTicks(m.proc.pid);
    const t0 = performance.now();
    await sleep(windowMs);
    const c1 = cpuTicks(m.proc.pid);
    const seconds = (performance.now() - t0) / 1000;
    // Memory as a monitored master has it: after /metrics and /status have
    // been served (a scrape brings back pages that idling alone does not).
    for (const path of ["/metrics", "/status"]) {
      await (await fetch(`http://127.0.0.1:${m.metricsPort}${path}`)).arrayBuffer();
    }
    await sleep(500);
    const mem = memMiB(m.proc.pid);
    return {
      masterRss: mem.rss,
      masterAnon: mem.anon,
      workerRss: memMiB(pids[0]).rss,
      cpuShare: (c1 - c0) / ticksPerSecond() / seconds,
    };
  });
}

async function bareIdle(
  ctx: BenchContext,
  runtime: RuntimeName,
): Promise<{ rss: number; anon: number }> {
  const s = await startBare(ctx, runtime);
  try {
    await sleep(SETTLE_MS);
    return memMiB(s.proc.pid);
  } finally {
    await stop(s.proc, "SIGKILL");
  }
}

const MASTERS: Array<{ via: MasterVia; worker: RuntimeName; label: string; anchor: RuntimeName }> =
  [
    { via: "binary", worker: "deno", label: "binary (bun), deno worker", anchor: "bun" },
    { via: "binary", worker: "bun", label: "binary (bun), bun worker", anchor: "bun" },
    { via: "deno", worker: "deno", label: "checkout on deno, deno worker", anchor: "deno" },
    { via: "bun", worker: "bun", label: "checkout on bun, bun worker", anchor: "bun" },
  ];

/** The `idle` benchmark. */
export const idle: Bench = {
  name: "idle",
  summary: "master idle RSS vs one idle hello-world server, and master idle CPU",
  async run(ctx) {
    const rounds = ctx.quick ? 1 : 3;
    const windowMs = ctx.quick ? 5000 : 6000;
    const bare: Record<RuntimeName, Array<{ rss: number; anon: number }>> = { deno: [], bun: [] };
    const results = MASTERS.map(() => [] as MasterIdle[]);
    for (let r = 0; r < rounds; r++) {
      ctx.log(`idle: round ${r + 1} of ${rounds}`);
      for (const rt of ["deno", "bun"] as const) bare[rt].push(await bareIdle(ctx, rt));
      for (const [i, m] of MASTERS.entries()) {
        results[i].push(await masterIdle(ctx, m.via, m.worker, windowMs));
      }
    }
    const rows: Row[] = [];
    // The anchor is an idle hello-world worker of the master's runtime as
    // forklift runs it (reporter preloaded), measured in the same run.
    const workerRss = (rt: RuntimeName) =>
      median(MASTERS.flatMap((m, i) => m.worker === rt ? results[i].map((x) => x.workerRss) : []));
    for (const [i, m] of MASTERS.entries()) {
      const binary = m.via === "binary";
      const rss = median(results[i].map((x) => x.masterRss));
      const anon = median(results[i].map((x) => x.masterAnon));
      const anchor = workerRss(m.anchor);
      const bareRss = median(bare[m.anchor].map((x) => x.rss));
      const worker = median(results[i].map((x) => x.workerRss));
      rows.push({
        bench: "idle",
        metric: `master RSS, ${m.label} (its worker: ${fmt(worker)} MiB; bare ${m.anchor} server ${
          fmt(bareRss)
        } MiB, ${fmt(rss / bareRss, 2)}×)`,
        forklift: `${fmt(rss)} MiB (anon ${fmt(anon)})`,
        anchor: `idle ${m.anchor} worker ${fmt(anchor)} MiB`,
        versus: `${fmt(rss / anchor, 2)}×`,
        target: binary ? "≤ 1×" : "≤ 1× (info)",
        pass: binary ? rss <= anchor : null,
      });
    }
    for (const [i, m] of MASTERS.entries()) {
      const binary = m.via === "binary";
      const cpu = median(results[i].map((x) => x.cpuShare));
      rows.push({
        bench: "idle",
        metric: `master CPU over ${windowMs / 1000} s idle, ${m.label}`,
        forklift: `${fmt(cpu * 100, 2)}% of a core`,
        anchor: "0%",
        versus: `+${fmt(cpu * 100, 2)}%`,
        target: `≈ 0 (≤ ${CPU_TARGET * 100}%)${binary ? "" : " (info)"}`,
        pass: binary ? cpu <= CPU_TARGET : null,
      });
    }
    return rows;
  },
};
