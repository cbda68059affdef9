/**
 * `overhead`: hello-world requests per second through forklift with the
 * reporter injected, against the same server run by forklift with
 * `--no-inject` (same worker count), on Deno and on Bun. In each round one
 * wrk (keep-alive) loads each master at the same time, so the machine's drift
 * hits both alike. Target: at most 3% fewer requests per second.
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
import { fmt, median, pairedRatio } from "./_stats.ts";
import { cpuTicks, ticksPerSecond } from "./idle.ts";

const TARGET_LOSS = 0.03;
/** wrk's threads and connections: one thread and 32 keep-alive connections. */
const WRK_ARGS = ["-t1", "-c32", "--timeout", "2s"];

/** Whether wrk can be run; says how to get it when not, for the benchmark `name`. */
export function wrkFound(ctx: BenchContext, name: string): boolean {
  const r = spawnSync("wrk", ["-v"], { encoding: "utf8", timeout: 5000 });
  if (r.error === undefined) return true;
  ctx.log(
    `${name}: wrk not found; install it (Debian/Ubuntu: apt-get install -y wrk, ` +
      `macOS: brew install wrk) and rerun \`deno task bench ${name}\``,
  );
  return false;
}

/**
 * CPU pinning on a Linux machine with `taskset` and at least two cores: the
 * servers on the last core, wrk on the first, so that the load generator never
 * takes CPU from the process it measures. Empty prefixes elsewhere.
 */
export function pinning(): { server: string[]; client: string[]; note: string } {
  const cpus = navigator.hardwareConcurrency ?? 1;
  const r = spawnSync("taskset", ["-c", "0", "true"], { timeout: 5000 });
  if (cpus < 2 || r.status !== 0) return { server: [], client: [], note: "unpinned" };
  const last = String(cpus - 1);
  return {
    server: ["taskset", "-c", last],
    client: ["taskset", "-c", "0"],
    note: `servers on cpu ${last}, wrk on cpu 0`,
  };
}

/**
 * Runs wrk against `port` (GET / unless a Lua `script` makes the requests);
 * resolves to requests per second and any errors.
 */
export async function wrk(
  port: number,
  seconds: number,
  prefix: string[],
  script?: string,
): Promise<{ rps: number; requests: number; errors: string }> {
  // A wrk that ends without a word (it was seen once in a long run, with the
  // server still answering) gets one more go: one lost round must not lose a
  // whole benchmark's rows.
  try {
    return await wrkOnce(port, seconds, prefix, script);
  } catch (e) {
    const silent = e instanceof Error && e.message.startsWith(NO_RATE) &&
      e.message.slice(NO_RATE.length).trim() === "";
    if (!silent) throw e;
    return await wrkOnce(port, seconds, prefix, script);
  }
}

const NO_RATE = "wrk printed no rate:";

async function wrkOnce(
  port: number,
  seconds: number,
  prefix: string[],
  script?: string,
): Promise<{ rps: number; requests: number; errors: string }> {
  const p = start([
    ...prefix,
    "wrk",
    ...WRK_ARGS,
    `-d${seconds}s`,
    ...(script === undefined ? [] : ["-s", script]),
    `http://127.0.0.1:${port}/`,
  ], {
    deadlineMs: (seconds + 30) * 1000,
  });
  await p.exited;
  const out = p.output();
  const m = out.match(/Requests\/sec:\s+([\d.]+)/);
  if (!m) throw new Error(`${NO_RATE}\n${out}`);
  const errors = [...out.matchAll(/(Socket errors:.*|Non-2xx or 3xx responses:.*)/g)]
    .map((x) => x[1].trim()).join("; ");
  const requests = Number(out.match(/(\d+) requests in/)?.[1] ?? 0);
  return { rps: Number(m[1]), requests, errors };
}

/** What one wrk loads in a round: a port, and the processes that answer on it. */
export interface Target {
  port: number;
  /** The server processes whose CPU time the round's requests cost. */
  pids: number[];
}

/** One target's figures over the measured rounds. */
export interface Load {
  /** wrk's requests per second. */
  rps: number[];
  /** The servers' CPU time per request, in microseconds. */
  cpuUs: number[];
}

/**
 * Runs `rounds` rounds of `seconds` in which one wrk per target loads every
 * target at the same time: this host's speed swings by up to half from one
 * 2 s round to the next, and loading all targets together puts each swing on
 * all of them, so that each round's ratio between targets cancels it. Each
 * round gives each target's requests per second and its servers' CPU time per
 * request (`/proc`). wrk's errors go to `onErrors` with the target's index.
 *
 * @example
 * ```ts ignore
 * const [a, b] = await loadTogether(
 *   [{ port: 8001, pids: [101, 102] }, { port: 8002, pids: [201, 202] }],
 *   6, 2, pinning().client,
 * );
 * const cost = pairedRatio(a.cpuUs, b.cpuUs);
 * ```
 */
export async function loadTogether(
  targets: Target[],
  rounds: number,
  seconds: number,
  client: string[],
  script?: string,
  onErrors?: (target: number, errors: string) => void,
): Promise<Load[]> {
  const tick = 1000 / ticksPerSecond();
  const cpu = (t: Target) => t.pids.reduce((sum, pid) => sum + cpuTicks(pid), 0);
  const out: Load[] = targets.map(() => ({ rps: [], cpuUs: [] }));
  for (let i = 0; i < rounds; i++) {
    const before = targets.map(cpu);
    const results = await Promise.all(targets.map((t) => wrk(t.port, seconds, client, script)));
    results.forEach((r, k) => {
      if (r.errors) onErrors?.(k, r.errors);
      const used = (cpu(targets[k]) - before[k]) * tick;
      out[k].rps.push(r.rps);
      out[k].cpuUs.push(r.requests > 0 ? (used * 1000) / r.requests : NaN);
    });
  }
  return out;
}

/**
 * `setsid` as a prefix when there is one: forklift starts each worker in a
 * session of its own, and the scheduler shares a core between sessions
 * (autogroups) before it shares it between processes, so every server a
 * benchmark starts by hand gets a session too and no side is favoured.
 */
export function ownSession(): string[] {
  const r = spawnSync("setsid", ["true"], { timeout: 5000 });
  return r.status === 0 ? ["setsid"] : [];
}

/**
 * Both masters run side by side on the pinned core and are loaded together
 * ({@linkcode loadTogether}); each one's figures.
 */
async function measure(
  ctx: BenchContext,
  runtime: RuntimeName,
  workers: number,
  rounds: number,
  seconds: number,
  pin: { server: string[]; client: string[] },
  sides: [boolean, boolean],
): Promise<Load[]> {
  const masters: Array<{ m: Awaited<ReturnType<typeof startMaster>>; pids: number[] }> = [];
  const prefix = [...pin.server, ...ownSession()];
  try {
    for (const inject of sides) {
      const m = await startMaster(ctx, { runtime, workers, inject, prefix });
      masters.push({ m, pids: (await allAnswering(m, workers)).pids });
    }
    // Warm-up: let the JIT settle before the measured rounds.
    await Promise.all(masters.map(({ m }) => wrk(m.port, 1, pin.client)));
    return await loadTogether(
      masters.map(({ m, pids }) => ({ port: m.port, pids })),
      rounds,
      seconds,
      pin.client,
      undefined,
      (_, errors) => ctx.log(`overhead: ${runtime} -w ${workers}: ${errors}`),
    );
  } finally {
    for (const { m } of masters) await stop(m.proc, "SIGTERM", 5000);
  }
}

/** The `overhead` benchmark. */
export const overhead: Bench = {
  name: "overhead",
  summary: "hello-world req/s with the injected reporter vs --no-inject (wrk, keep-alive)",
  async run(ctx) {
    const metric = (runtime: string, workers: number) =>
      `hello-world req/s, ${runtime}, -w ${workers} (wrk ${WRK_ARGS.slice(0, 2).join(" ")})`;
    if (!wrkFound(ctx, "overhead")) return [];
    const rows: Row[] = [];
    // Fresh masters for each block: a process's own luck (its JIT's choices,
    // how the kernel spreads wrk's connections over the workers) stays with it
    // for its life, so one pair of masters is one sample of that luck.
    const blocks = ctx.quick ? 2 : 4;
    const roundsPerBlock = ctx.quick ? 3 : 6;
    const seconds = ctx.quick ? 1 : 2;
    const pin = pinning();
    const list = (xs: number[]) => xs.map((x) => fmt(x, 3)).join(", ");
    for (const runtime of ["deno", "bun"] as const) {
      // The A/A case (no-inject against itself) shows what this machine can resolve.
      for (
        const [workers, sides] of [[1, [true, false]], [2, [true, false]], [1, [
          false,
          false,
        ]]] as const
      ) {
        const aa = sides[0] === sides[1];
        ctx.log(
          `overhead: ${runtime} -w ${workers}${
            aa ? " A/A" : ""
          }, ${blocks} blocks of ${roundsPerBlock} rounds of ${seconds} s (${pin.note})`,
        );
        const a: Load = { rps: [], cpuUs: [] };
        const b: Load = { rps: [], cpuUs: [] };
        for (let i = 0; i < blocks; i++) {
          const [x, y] = await measure(ctx, runtime, workers, roundsPerBlock, seconds, pin, [
            ...sides,
          ]);
          a.rps.push(...x.rps);
          a.cpuUs.push(...x.cpuUs);
          b.rps.push(...y.rps);
          b.cpuUs.push(...y.cpuUs);
        }
        ctx.log(`overhead: rps ${list(a.rps)} vs ${list(b.rps)}`);
        ctx.log(`overhead: cpu µs/req ${list(a.cpuUs)} vs ${list(b.cpuUs)}`);
        const cpuA = median(a.cpuUs);
        const cpuB = median(b.cpuUs);
        // The verdict comes from each round's own ratio. Requests per second a
        // core gives, from CPU time per request.
        const loss = 1 - 1 / pairedRatio(a.cpuUs, b.cpuUs);
        const rpsLoss = 1 - median(a.rps) / median(b.rps);
        const signed = (x: number) => `${x >= 0 ? "−" : "+"}${fmt(Math.abs(x) * 100, 2)}%`;
        rows.push({
          bench: "overhead",
          metric: `${metric(runtime, workers)}${
            aa ? ", A/A: --no-inject against itself" : ""
          }, both loaded at once, ${pin.note}; req/s per core from worker CPU per request, median of the rounds' ratios (wrk req/s ${
            fmt(median(a.rps), 4)
          } vs ${fmt(median(b.rps), 4)}: ${signed(rpsLoss)})`,
          forklift: `${fmt(cpuA, 3)} µs/req`,
          anchor: `--no-inject ${fmt(cpuB, 3)} µs/req (medians)`,
          versus: signed(loss),
          target: aa ? `≤ −${TARGET_LOSS * 100}% (resolution)` : `≤ −${TARGET_LOSS * 100}%`,
          pass: aa ? null : loss <= TARGET_LOSS,
        });
      }
    }
    return rows;
  },
};
