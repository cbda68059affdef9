/**
 * `apps`: the per-worker cost of forklift on the apps users run. A Hono app
 * and an Express app (a route with a parameter, a JSON body in and out; wrk
 * sends three reads for each write, `fixtures/mixed.lua`), and hello-world as
 * a second row, on Deno and on Bun: `forklift run -w 2` against the same app
 * as two processes started by hand on one reusePort port, in the same run.
 * The four servers share one core and wrk has the other. In each round one
 * wrk loads the forklift side and another the bare pair, at once: this host's
 * speed swings by up to half from one 2 s round to the next, and loading both
 * sides together puts every swing on both (rounds taken one side after the
 * other left ±10% between runs). Each round's ratio is one sample; the
 * verdict is their median. An A/A row, a bare pair against a second one,
 * shows what the method resolves.
 *
 * Per side: the servers' CPU time per request (`/proc`, both processes), wrk's
 * requests per second (the two sides split the core, so this is the CPU cost
 * seen from the client), and each server's resident memory after the load.
 * Targets: CPU per request within 3% of the pair, requests per second at
 * least 0.97× the pair, each worker's RSS within 1 MiB of a bare server's.
 *
 * Private memory has its own runs ({@linkcode memoryRuns}): a heap's size
 * after a load moves by a mebibyte from one start to the next, more than the
 * target, so a single start of each side says little. Nine times (three with
 * `--quick`) both sides start afresh, take the same short load at once, idle
 * 3 s, and each server's `Anonymous` (`/proc/PID/smaps_rollup`: what the
 * process allocated itself; file pages of the runtime's executable are
 * shared by all its processes) is read; each run's difference of the sides'
 * means is one sample, the verdict their median, the spread their range. The
 * A/A row runs a bare pair against a second one the same way. Target: within
 * +1 MiB of a bare server, Hono and Express, on both runtimes.
 * `FORKLIFT_BENCH_MEMORY=long,nursery,nojit` adds rows that start both sides
 * alike under a control ({@linkcode MemoryControl}), to show where a
 * difference goes.
 *
 * Bun's `node:http` takes no `reusePort` (a second Express started by hand
 * fails with "port in use"); its hand-started pair gets it from a three-line
 * preload, `fixtures/reuse_port_preload.ts`, the anchor's only addition.
 *
 * Express on Bun gets rows of its own: `forklift run -w 1` and `-w 2` against
 * as many hand-started servers in 9 rounds, each with its A/A row and the
 * spread of the rounds' ratios (Bun's node:http runs on its native server,
 * where a request hook costs most).
 *
 * `FORKLIFT_BENCH_APPS=deno:hono:binary,bun:hono:bare` runs only the cases
 * named (runtime, app, and `binary`, `deno` for the master on Deno, or `bare`
 * for the A/A row); `bun:express:w1`, `bun:express:n1` (`--no-inject`),
 * `bun:express:aa1`, `bun:express:w2` and `bun:express:aa2` name the
 * Express-on-Bun rows.
 *
 * @module
 */
import type { Bench, BenchContext } from "./_context.ts";
import { allAnswering, masterArgv, type MasterVia } from "./_forklift.ts";
import { freePort, sleep, start, type Started, stop } from "./_process.ts";
import type { Row } from "./_report.ts";
import type { RuntimeName } from "./_runtimes.ts";
import { fmt, median, pairedRatio, signedPct } from "./_stats.ts";
import { type Load, loadTogether, ownSession, pinning, wrk, wrkFound } from "./overhead.ts";
import { readFileSync } from "node:fs";
import process from "node:process";

/** An app the benchmarks serve. */
export type App = "hono" | "express" | "hello";

/** Each app's fixture, from the repository root. */
export const FIXTURES: Record<App, string> = {
  hono: "scripts/bench/fixtures/hono_app.ts",
  express: "scripts/bench/fixtures/express_app.ts",
  hello: "scripts/bench/fixtures/hello.ts",
};
/** The wrk script of a small JSON API's requests, for the router apps. */
export const MIXED = "scripts/bench/fixtures/mixed.lua";
const REUSE_PORT_PRELOAD = "scripts/bench/fixtures/reuse_port_preload.ts";

/** Two servers on one port: forklift's workers, or a pair started by hand. */
interface Side {
  port: number;
  pids: number[];
  procs: Started[];
}

/**
 * A control for the private-memory runs, to tell apart what a worker keeps
 * from when its runtime grows: `long` loads 20 s instead of 2, `nursery` caps
 * V8's young generation at its starting size (Deno: two 1 MiB semi-spaces,
 * which V8 doubles once enough survives its scavenges), and `nojit` turns
 * off Bun's JIT compilers (JavaScriptCore keeps the machine code of every
 * hot function).
 */
export type MemoryControl = "long" | "nursery" | "nojit";

/** Each control: the runtimes it applies to, what it does, and how both sides start under it. */
export const CONTROLS: Readonly<Record<MemoryControl, Control>> = {
  long: { runtimes: ["deno", "bun"], what: "loaded long enough for their heaps to settle" },
  nursery: {
    runtimes: ["deno"],
    what: "with V8's young generation capped at its starting size (--max-semi-space-size=1)",
    denoFlags: ["--v8-flags=--max-semi-space-size=1"],
  },
  nojit: {
    runtimes: ["bun"],
    what: "with Bun's JIT compilers off (BUN_JSC_useJIT=0)",
    env: { BUN_JSC_useJIT: "0" },
  },
};

/** A memory control: see {@linkcode MemoryControl}. */
export interface Control {
  runtimes: RuntimeName[];
  what: string;
  denoFlags?: string[];
  env?: Record<string, string>;
}

function appArgv(
  ctx: BenchContext,
  runtime: RuntimeName,
  app: App,
  bare: boolean,
  denoFlags: string[] = [],
): string[] {
  const script = `${ctx.root}${FIXTURES[app]}`;
  if (runtime === "deno") {
    return [ctx.runtimes.deno, "run", "-A", "--unstable-net", ...denoFlags, script];
  }
  if (bare && app === "express") {
    return [ctx.runtimes.bun, "--preload", `${ctx.root}${REUSE_PORT_PRELOAD}`, script];
  }
  return [ctx.runtimes.bun, script];
}

async function startSide(
  ctx: BenchContext,
  runtime: RuntimeName,
  app: App,
  via: MasterVia | "bare",
  prefix: string[],
  workers = 2,
  masterFlags: string[] = [],
  control?: MemoryControl,
): Promise<Side> {
  const tuned: Partial<Control> = control === undefined ? {} : CONTROLS[control];
  const port = await freePort();
  const env = { ...tuned.env, PORT: String(port) };
  const procs: Started[] = [];
  if (via === "bare") {
    for (let i = 0; i < workers; i++) {
      procs.push(start([...prefix, ...appArgv(ctx, runtime, app, true, tuned.denoFlags)], {
        cwd: ctx.root,
        env,
        deadlineMs: 600_000,
      }));
    }
  } else {
    procs.push(start([
      ...prefix,
      ...masterArgv(ctx, via),
      "run",
      "-w",
      String(workers),
      "--metrics-bind",
      `127.0.0.1:${await freePort()}`,
      ...masterFlags,
      "--",
      ...appArgv(ctx, runtime, app, false, tuned.denoFlags),
    ], { cwd: ctx.root, env, deadlineMs: 600_000 }));
  }
  const done = () => procs.some((p) => p.done());
  const { pids } = await allAnswering({ proc: { done }, port }, workers, 30_000);
  return { port, pids, procs };
}

/** `VmRSS` and `RssAnon` of a process, in MiB. */
function memoryMiB(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kb("VmRSS") / 1024, anon: kb("RssAnon") / 1024 };
}

interface Figures extends Load {
  rss: number[];
  /** The private part of `rss`: what the runtime's shared executable pages leave out. */
  anon: number[];
}

/**
 * Rounds in which wrk loads the forklift side and the bare pair at once
 * ({@linkcode loadTogether}), the four servers sharing one core. Each side's
 * figures.
 */
async function compare(
  ctx: BenchContext,
  runtime: RuntimeName,
  app: App,
  vias: [MasterVia | "bare", "bare"],
  rounds: { blocks: number; rounds: number; seconds: number },
  workers = 2,
  memory = true,
  warmUp = 2,
  masterFlags: string[] = [],
): Promise<[Figures, Figures]> {
  const pin = pinning();
  const session = ownSession();
  const script = app === "hello" ? undefined : `${ctx.root}${MIXED}`;
  const out: [Figures, Figures] = [
    { rps: [], cpuUs: [], rss: [], anon: [] },
    { rps: [], cpuUs: [], rss: [], anon: [] },
  ];
  for (let b = 0; b < rounds.blocks; b++) {
    const sides: Side[] = [];
    try {
      // Which side starts first alternates, so neither always has the warmer caches.
      for (const k of b % 2 === 0 ? [0, 1] : [1, 0]) {
        sides[k] = await startSide(
          ctx,
          runtime,
          app,
          vias[k],
          [...pin.server, ...session],
          workers,
          masterFlags,
        );
      }
      await Promise.all(sides.map((s) => wrk(s.port, warmUp, pin.client, script)));
      const loads = await loadTogether(
        sides,
        rounds.rounds,
        rounds.seconds,
        pin.client,
        script,
        (_, errors) => ctx.log(`apps: ${runtime} ${app}: ${errors}`),
      );
      loads.forEach((l, k) => {
        out[k].rps.push(...l.rps);
        out[k].cpuUs.push(...l.cpuUs);
      });
      if (!memory) continue;
      // Both sides idle alike before their memory is read.
      await sleep(3_000);
      for (const k of [0, 1]) {
        for (const pid of sides[k].pids) {
          const m = memoryMiB(pid);
          out[k].rss.push(m.rss);
          out[k].anon.push(m.anon);
        }
      }
    } finally {
      for (const s of sides) for (const p of s?.procs ?? []) await stop(p, "SIGTERM", 10_000);
    }
  }
  return out;
}

/** The smallest and largest of each round's own ratio `a / b`, as `−0.80%…+3.1%`. */
function spread(a: readonly number[], b: readonly number[]): string {
  const ratios = a.map((x, i) => x / b[i] - 1);
  return `${signedPct(Math.min(...ratios))}…${signedPct(Math.max(...ratios))}`;
}

/**
 * Seconds of load before each Express-on-Bun round: the two sides split the
 * core, and Express on Bun's JIT is still settling after 2 s of half a core
 * (a process of either kind then still shows offsets of up to ±10%).
 */
const EXPRESS_WARM_UP_S = 5;

/**
 * Express on Bun, the node:http path, in 9 rounds: `forklift run -w 1` and
 * `-w 2` against as many hand-started servers, and an A/A row for each, a
 * bare side against a second bare side. Each round starts both sides afresh
 * (in alternate order) and loads them together: a Bun process keeps for life
 * an offset of several percent (where its JIT and its heap landed), which
 * rounds within one pair of processes would all share, so that each round
 * here is one independent sample. Each row gives the median of the rounds'
 * ratios and their spread (smallest…largest).
 */
async function expressOnBun(ctx: BenchContext, only: string[] | undefined): Promise<Row[]> {
  const rows: Row[] = [];
  const pin = pinning();
  const rounds = ctx.quick
    ? { blocks: 3, rounds: 1, seconds: 1 }
    : { blocks: 9, rounds: 1, seconds: 3 };
  const n = rounds.blocks * rounds.rounds;
  for (const workers of [1, 2]) {
    for (const kind of ["binary", "no_inject", "bare"] as const) {
      const via = kind === "bare" ? "bare" : "binary";
      const tag = kind === "bare" ? "aa" : kind === "no_inject" ? "n" : "w";
      const id = `bun:express:${tag}${workers}`;
      // Without the reporter, Bun's node:http takes no reusePort: one worker only.
      if (kind === "no_inject" && workers > 1) continue;
      if (only !== undefined && !only.includes(id)) continue;
      ctx.log(`apps: bun express, ${n} rounds, ${kind} -w ${workers}`);
      const [f, bare] = await compare(
        ctx,
        "bun",
        "express",
        [via, "bare"],
        rounds,
        workers,
        false,
        EXPRESS_WARM_UP_S,
        kind === "no_inject" ? ["--no-inject"] : [],
      );
      const cpu = pairedRatio(f.cpuUs, bare.cpuUs) - 1;
      const servers = workers === 1 ? "a hand-started server" : `${workers} hand-started servers`;
      const what = kind === "bare"
        ? `A/A, ${servers} against ${workers === 1 ? "a second one" : "a second pair"}`
        : kind === "no_inject"
        ? `forklift run -w ${workers} --no-inject (no reporter: what the master's process costs by itself) against ${servers}`
        : `forklift run -w ${workers} (binary master) against ${servers}`;
      rows.push({
        bench: "apps",
        metric:
          `express, bun (node:http), ${n} rounds: server CPU per request, ${what} (${pin.note}; median of the rounds' ratios, spread smallest…largest ${
            spread(f.cpuUs, bare.cpuUs)
          })`,
        forklift: `${fmt(median(f.cpuUs), 3)} µs/req`,
        anchor: `bare ${fmt(median(bare.cpuUs), 3)} µs/req`,
        versus: signedPct(cpu),
        target: kind === "binary" ? "≤ +3%" : "(info)",
        pass: kind === "binary" ? cpu <= 0.03 : null,
      });
    }
  }
  return rows;
}

/** `Anonymous` of `/proc/PID/smaps_rollup`, in KiB: memory the process allocated itself. */
export function anonymousKiB(pid: number): number {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  return Number(/^Anonymous:\s+(\d+) kB/m.exec(text)?.[1] ?? NaN);
}

/**
 * `runs` fresh starts of both sides, each loaded at once for `seconds` then
 * left idle 3 s: per run, the mean `Anonymous` (KiB) of the first side's
 * servers minus the second's. A `control` starts both sides alike.
 */
async function memoryRuns(
  ctx: BenchContext,
  runtime: RuntimeName,
  app: App,
  vias: [MasterVia | "bare", "bare"],
  runs: number,
  seconds: number,
  control?: MemoryControl,
): Promise<number[]> {
  const pin = pinning();
  const session = ownSession();
  const script = app === "hello" ? undefined : `${ctx.root}${MIXED}`;
  const deltas: number[] = [];
  for (let r = 0; r < runs; r++) {
    const sides: Side[] = [];
    try {
      for (const k of r % 2 === 0 ? [0, 1] : [1, 0]) {
        const prefix = [...pin.server, ...session];
        sides[k] = await startSide(ctx, runtime, app, vias[k], prefix, 2, [], control);
      }
      await Promise.all(sides.map((s) => wrk(s.port, seconds, pin.client, script)));
      await sleep(3_000);
      const mean = (s: Side) =>
        s.pids.reduce((sum, pid) => sum + anonymousKiB(pid), 0) / s.pids.length;
      deltas.push(mean(sides[0]) - mean(sides[1]));
    } finally {
      for (const s of sides) for (const p of s?.procs ?? []) await stop(p, "SIGTERM", 10_000);
    }
  }
  return deltas;
}

/** The private-memory row of one case: {@linkcode memoryRuns}' median and range. */
async function memoryRow(
  ctx: BenchContext,
  runtime: RuntimeName,
  app: App,
  via: MasterVia | "bare",
  plan: { runs: number; seconds: number },
  what: string,
  control?: MemoryControl,
): Promise<Row> {
  ctx.log(
    `apps: ${runtime} ${app}: private memory${control ? ` (${control})` : ""}, ${plan.runs} runs`,
  );
  const seconds = control === "long" ? 20 : plan.seconds;
  const deltas = await memoryRuns(ctx, runtime, app, [via, "bare"], plan.runs, seconds, control);
  const d = median(deltas);
  const aa = via === "bare";
  const info = aa || control !== undefined;
  return {
    bench: "apps",
    metric: `${
      aa ? `${app}, ${runtime}: ${what}` : what
    }: private memory (Anonymous, smaps_rollup) of each server after ${seconds} s of load and 3 s idle, against a bare server${
      control ? `, both ${CONTROLS[control].what}` : ""
    } (median of ${plan.runs} fresh starts, range ${kib(Math.min(...deltas))} … ${
      kib(Math.max(...deltas))
    }${aa ? "; the resolution of the rows above" : ""})`,
    forklift: kib(d),
    anchor: "bare server",
    versus: `${d >= 0 ? "+" : "−"}${fmt(Math.abs(d) / 1024, 3)} MiB`,
    target: info ? "(info)" : "≤ +1 MiB",
    pass: info ? null : d <= 1024,
  };
}

/**
 * The controls named in `FORKLIFT_BENCH_MEMORY` (`long,nursery,nojit`) that
 * apply to `runtime`: rows that show where a private-memory difference goes.
 */
export function memoryControls(runtime: RuntimeName): MemoryControl[] {
  const named = (process.env.FORKLIFT_BENCH_MEMORY ?? "").split(",").map((c) => c.trim());
  return (Object.keys(CONTROLS) as MemoryControl[]).filter((c) =>
    named.includes(c) && CONTROLS[c].runtimes.includes(runtime)
  );
}

const kib = (x: number) => `${x >= 0 ? "+" : "−"}${fmt(Math.abs(x), 4)} KiB`;

/** The `apps` benchmark. */
export const apps: Bench = {
  name: "apps",
  summary: "Hono and Express (route parameter, JSON body) under forklift -w 2 vs a bare pair",
  async run(ctx) {
    if (!wrkFound(ctx, "apps")) return [];
    const rows: Row[] = [];
    const rounds = ctx.quick
      ? { blocks: 1, rounds: 3, seconds: 1 }
      : { blocks: 3, rounds: 6, seconds: 2 };
    // "bare" in the first place is the A/A row: the bare pair against a second
    // bare pair, what this machine can resolve.
    const cases: Array<[RuntimeName, App, MasterVia | "bare"]> = [];
    const only = process.env.FORKLIFT_BENCH_APPS?.split(",");
    for (const runtime of ["deno", "bun"] as const) {
      for (const app of ["hono", "express", "hello"] as const) cases.push([runtime, app, "binary"]);
      for (const app of ["hono", "express"] as const) cases.push([runtime, app, "deno"]);
      cases.push([runtime, "hono", "bare"]);
    }
    const memory = ctx.quick ? { runs: 3, seconds: 1 } : { runs: 9, seconds: 2 };
    const pin = pinning();
    for (const [runtime, app, via] of cases) {
      if (only !== undefined && !only.includes(`${runtime}:${app}:${via}`)) continue;
      ctx.log(
        `apps: ${runtime} ${app}, ${
          via === "bare" ? "A/A" : `master ${via === "binary" ? "binary" : "deno task"}`
        }`,
      );
      const [f, bare] = await compare(ctx, runtime, app, [via, "bare"], rounds);
      if (via === "bare") {
        const cpu = pairedRatio(f.cpuUs, bare.cpuUs) - 1;
        rows.push({
          bench: "apps",
          metric:
            `${app}, ${runtime}: A/A, a bare pair against a second bare pair, server CPU per request (${pin.note}; the resolution of the rows above)`,
          forklift: `${fmt(median(f.cpuUs), 3)} µs/req`,
          anchor: `bare pair ${fmt(median(bare.cpuUs), 3)} µs/req`,
          versus: signedPct(cpu),
          target: "(info)",
          pass: null,
        });
        rows.push(
          await memoryRow(
            ctx,
            runtime,
            app,
            via,
            memory,
            "A/A, a bare pair against a second bare pair",
          ),
        );
        continue;
      }
      const info = app === "hello";
      const master = via === "binary" ? "binary master" : "master on Deno";
      const what = `${app === "hello" ? "hello-world" : app}, ${runtime} workers, ${master}`;
      // The verdicts come from each pair of rounds' own ratio.
      const cpu = pairedRatio(f.cpuUs, bare.cpuUs) - 1;
      const rps = pairedRatio(f.rps, bare.rps);
      const rss = median(f.rss) - median(bare.rss);
      const anon = median(f.anon) - median(bare.anon);
      rows.push({
        bench: "apps",
        metric:
          `${what}: server CPU per request, -w 2 against a hand-started reusePort pair, both loaded at once (${pin.note}; median of the rounds' ratios)`,
        forklift: `${fmt(median(f.cpuUs), 3)} µs/req`,
        anchor: `bare pair ${fmt(median(bare.cpuUs), 3)} µs/req`,
        versus: signedPct(cpu),
        target: info ? "(info)" : "≤ +3%",
        pass: info ? null : cpu <= 0.03,
      });
      rows.push({
        bench: "apps",
        metric: `${what}: requests per second, both sides sharing the core (wrk -t1 -c32 each${
          info ? "" : ", mixed.lua"
        })`,
        forklift: `${fmt(median(f.rps), 4)}`,
        anchor: `bare pair ${fmt(median(bare.rps), 4)}`,
        versus: `${fmt(rps, 3)}×`,
        target: info ? "(info)" : "≥ 0.97×",
        pass: info ? null : rps >= 0.97,
      });
      rows.push({
        bench: "apps",
        metric: `${what}: resident memory (VmRSS) of each server after the load (median)`,
        forklift: `${fmt(median(f.rss), 3)} MiB`,
        anchor: `bare server ${fmt(median(bare.rss), 3)} MiB`,
        versus: `${rss >= 0 ? "+" : "−"}${fmt(Math.abs(rss), 2)} MiB`,
        // Resident pages count the runtime's own file pages, which every process
        // of it shares: the private-memory rows carry the target.
        target: "(info)",
        pass: null,
      });
      rows.push({
        bench: "apps",
        metric:
          `${what}: private memory (RssAnon, VmRSS without the pages of files such as the runtime's own executable, which every process of it shares) of each server after the load (median)`,
        forklift: `${fmt(median(f.anon), 3)} MiB`,
        anchor: `bare server ${fmt(median(bare.anon), 3)} MiB`,
        versus: `${anon >= 0 ? "+" : "−"}${fmt(Math.abs(anon), 2)} MiB`,
        target: "(info)",
        pass: null,
      });
      if (!info && via === "binary") {
        rows.push(await memoryRow(ctx, runtime, app, via, memory, what));
        for (const control of memoryControls(runtime)) {
          rows.push(await memoryRow(ctx, runtime, app, via, memory, what, control));
        }
      }
    }
    rows.push(...await expressOnBun(ctx, only));
    return rows;
  },
};
