/**
 * `drain`: what a worker adds to its private memory while it drains. One
 * worker under the binary serves 300 requests, then a request that takes
 * 1.5 s; a `HUP` starts its replacement and the worker drains, waiting for
 * that request. Its `Anonymous` (`/proc/PID/smaps_rollup`) is read before the
 * `HUP` and 1 s after it, while it drains. Fresh master every round.
 *
 * For information: in Deno, the first touch of `process` or the first
 * `setTimeout` loads a layer of the runtime that costs megabytes (see
 * `docs/benchmarks.md`), and a drain is where a worker used to reach them.
 *
 * @module
 */
import type { Bench, BenchContext } from "./_context.ts";
import { allAnswering, withMaster } from "./_forklift.ts";
import { askPid } from "./_http.ts";
import { signal, sleep } from "./_process.ts";
import type { Row } from "./_report.ts";
import type { RuntimeName } from "./_runtimes.ts";
import { fmt, median } from "./_stats.ts";
import { anonymousKiB } from "./apps.ts";

const SLOW_FIXTURE = "scripts/bench/fixtures/slow.ts";

/** One round: the worker's `Anonymous` in KiB before the `HUP` and while it drains. */
async function drainRound(
  ctx: BenchContext,
  runtime: RuntimeName,
): Promise<{ before: number; draining: number }> {
  return await withMaster(ctx, { runtime, workers: 1, fixture: SLOW_FIXTURE }, async (m) => {
    const { pids: [pid] } = await allAnswering(m, 1);
    for (let i = 0; i < 300; i++) await askPid(m.port);
    await sleep(500);
    const before = anonymousKiB(pid);
    const slow = fetch(`http://127.0.0.1:${m.port}/slow`).then((r) => r.text());
    await sleep(200);
    signal(m.proc.pid, "SIGHUP");
    await sleep(1000);
    const draining = anonymousKiB(pid);
    await slow;
    return { before, draining };
  });
}

/** The `drain` benchmark. */
export const drain: Bench = {
  name: "drain",
  summary: "a worker's private memory while it drains a request in flight after a HUP",
  async run(ctx) {
    const rows: Row[] = [];
    const rounds = ctx.quick ? 2 : 5;
    for (const runtime of ["deno", "bun"] as const) {
      ctx.log(`drain: ${runtime}, ${rounds} rounds`);
      const growth: number[] = [];
      const before: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const round = await drainRound(ctx, runtime);
        before.push(round.before);
        growth.push(round.draining - round.before);
      }
      const g = median(growth) / 1024;
      rows.push({
        bench: "drain",
        metric:
          `a ${runtime} worker draining one request in flight, 1 s after a HUP: private memory (Anonymous, smaps_rollup) added by the drain, median of ${rounds} fresh masters (range ${
            fmt(Math.min(...growth) / 1024)
          } … ${fmt(Math.max(...growth) / 1024)} MiB)`,
        forklift: `${fmt(median(before) / 1024 + g)} MiB`,
        anchor: `before the HUP ${fmt(median(before) / 1024)} MiB`,
        versus: `${g >= 0 ? "+" : ""}${fmt(g)} MiB`,
        target: "(info)",
        pass: null,
      });
    }
    return rows;
  },
};
