/**
 * `overhead`: hello-world requests per second through forklift with the
 * reporter injected, against the same server run by forklift with
 * `--no-inject` (same worker count), on Deno and on Bun. wrk drives the load
 * with keep-alive; inject and no-inject rounds alternate in an ABBA order so
 * that slow drift cancels out. Target: at most 3% fewer requests per second.
 *
 * The load generator shares the machine with the workers; keep its threads
 * and connections small on a small machine.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import type { Bench, BenchContext } from "./_context.ts";
import { allAnswering, startMaster } from "./_forklift.ts";
import { start, stop } from "./_process.ts";
import type { Row } from "./_report.ts";
import type { RuntimeName } from "./_runtimes.ts";
import { fmt, median } from "./_stats.ts";

const TARGET_LOSS = 0.03;
/** wrk's threads and connections: one thread and 32 keep-alive connections. */
const WRK_ARGS = ["-t1", "-c32", "--timeout", "2s"];

/** Whether wrk can be run. */
export function hasWrk(): boolean {
  const r = spawnSync("wrk", ["-v"], { encoding: "utf8", timeout: 5000 });
  return r.error === undefined;
}

/** Runs wrk against `port` for `seconds`; resolves to requests per second and any errors. */
async function wrk(port: number, seconds: number): Promise<{ rps: number; errors: string }> {
  const p = start(["wrk", ...WRK_ARGS, `-d${seconds}s`, `http://127.0.0.1:${port}/`], {
    deadlineMs: (seconds + 30) * 1000,
  });
  await p.exited;
  const out = p.output();
  const m = out.match(/Requests\/sec:\s+([\d.]+)/);
  if (!m) throw new Error(`wrk printed no rate:\n${out}`);
  const errors = [...out.matchAll(/(Socket errors:.*|Non-2xx or 3xx responses:.*)/g)]
    .map((x) => x[1].trim()).join("; ");
  return { rps: Number(m[1]), errors };
}

async function oneRound(
  ctx: BenchContext,
  runtime: RuntimeName,
  workers: number,
  inject: boolean,
  seconds: number,
): Promise<number> {
  const m = await startMaster(ctx, { runtime, workers, inject });
  try {
    await allAnswering(m, workers);
    // Warm-up: let the JIT settle before the measured run.
    await wrk(m.port, 1);
    const r = await wrk(m.port, seconds);
    if (r.errors) ctx.log(`overhead: ${runtime} -w ${workers} inject=${inject}: ${r.errors}`);
    return r.rps;
  } finally {
    await stop(m.proc, "SIGTERM", 5000);
  }
}

/** The `overhead` benchmark. */
export const overhead: Bench = {
  name: "overhead",
  summary: "hello-world req/s with the injected reporter vs --no-inject (wrk, keep-alive)",
  async run(ctx) {
    const metric = (runtime: string, workers: number) =>
      `hello-world req/s, ${runtime}, -w ${workers} (wrk ${WRK_ARGS.slice(0, 2).join(" ")})`;
    if (!hasWrk()) {
      ctx.log(
        "overhead: wrk not found; install it (Debian/Ubuntu: apt-get install -y wrk, " +
          "macOS: brew install wrk) and rerun `deno task bench overhead`",
      );
      return [];
    }
    const rows: Row[] = [];
    const pairs = ctx.quick ? 2 : 5;
    const seconds = ctx.quick ? 3 : 6;
    for (const runtime of ["deno", "bun"] as const) {
      for (const workers of [1, 2]) {
        ctx.log(`overhead: ${runtime} -w ${workers}, ${pairs} pairs of ${seconds} s`);
        const withRep: number[] = [];
        const without: number[] = [];
        for (let i = 0; i < pairs; i++) {
          const order = i % 2 === 0 ? [true, false] : [false, true];
          for (const inject of order) {
            const rps = await oneRound(ctx, runtime, workers, inject, seconds);
            (inject ? withRep : without).push(rps);
          }
        }
        const a = median(withRep);
        const b = median(without);
        const list = (xs: number[]) => xs.map((x) => fmt(x, 4)).join(", ");
        ctx.log(`overhead: inject ${list(withRep)}; --no-inject ${list(without)}`);
        const loss = 1 - a / b;
        rows.push({
          bench: "overhead",
          metric: `${metric(runtime, workers)}, rounds spread ±${
            fmt(50 * (Math.max(...without) - Math.min(...without)) / b, 2)
          }%`,
          forklift: `${fmt(a, 4)} req/s`,
          anchor: `--no-inject ${fmt(b, 4)} req/s`,
          versus: `${loss >= 0 ? "−" : "+"}${fmt(Math.abs(loss) * 100, 2)}%`,
          target: `≤ −${TARGET_LOSS * 100}%`,
          pass: loss <= TARGET_LOSS,
        });
      }
    }
    return rows;
  },
};
