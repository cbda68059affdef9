/**
 * `health`: what a worker pays for the health figures forklift gives it
 * (heap, event-loop delay, requests in flight, measured in the worker; CPU
 * and memory, read by the master from `/proc`), against today's build
 * without them and against the two libraries users reach for instead,
 * prom-client's `collectDefaultMetrics()` and OpenTelemetry's runtime-node
 * instrumentation, all in one run on the same apps.
 *
 * "Without them" is the build before the worker's runtime metrics arrived:
 * the revision before `src/reporter/runtime_metrics.ts` was added (or
 * `FORKLIFT_BENCH_BASELINE=REV`), exported with `git archive` into a
 * temporary directory and built there with `scripts/build.ts`, so that both
 * binaries run side by side (the build has no switch that turns the runtime
 * metrics off). `FORKLIFT_BENCH_BASELINE=off` exports `HEAD` instead, with
 * the runtime metrics and the in-flight count taken out of its reporter
 * ({@linkcode switchOff}): the same code but for them, so the difference is
 * theirs alone and not that of everything committed since. The peers run in
 * hand-started servers with a preload
 * (`fixtures/prom_client_preload.ts`, `fixtures/otel_runtime_preload.ts`)
 * against the same servers without it: each peer's cost is its own delta, as
 * forklift's is the delta between its two builds.
 *
 * 1. Per request: the Hono and Express apps of `apps` (route parameter, JSON
 *    body, `fixtures/mixed.lua`), two servers a side on one pinned core, wrk
 *    on the other, both sides loaded at once in each round, which side starts
 *    first alternating from block to block. The servers' CPU per request
 *    comes from `/proc/PID/task/*\/schedstat` (nanoseconds; the 10 ms ticks of
 *    `/proc/PID/stat` are too coarse for a 1% target over 2 s rounds); each
 *    round's ratio is one sample, the verdict their median, the spread their
 *    range. An A/A row (the old build against itself) shows what the method
 *    resolves. Target: forklift's runtime metrics within +1% of the build
 *    without them.
 * 2. Idle: one server of each kind idles for 60 s, all at once (idle
 *    processes do not compete): CPU as `utime + stime` (`/proc/PID/stat`) and
 *    private memory as `Anonymous` (`/proc/PID/smaps_rollup`) after the
 *    window. Targets: the runtime metrics cost at most 0.2% of a core and
 *    256 KiB.
 * 3. Master: `process_sampler.ts` samples 64 real process groups; the cost of
 *    a pass at the default 5 s harvest interval. Target: at most 1% of a core.
 *
 * `FORKLIFT_BENCH_HEALTH=deno:hono:on,bun:express:prom` runs only the
 * per-request cases named (`on`, `aa`, `prom`, `otel`), and `idle` among them
 * the idle rows. `FORKLIFT_BENCH_MEMORY=nursery,nojit` starts every idle
 * server alike under `apps`' memory controls: V8's young generation capped
 * on Deno, whose idle rows otherwise move by megabytes with the moment V8
 * doubles it; Bun's JIT compilers off.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { anonymousKiB, CONTROLS, FIXTURES, memoryControls, MIXED } from "./apps.ts";
import type { App, Control } from "./apps.ts";
import type { Bench, BenchContext } from "./_context.ts";
import { allAnswering } from "./_forklift.ts";
import { cpuTicks, ticksPerSecond } from "./idle.ts";
import { ownSession, pinning, wrk, wrkFound } from "./overhead.ts";
import { cpuMs, freePort, runLoop, sleep, start, type Started, stop } from "./_process.ts";
import type { Row } from "./_report.ts";
import type { RuntimeName } from "./_runtimes.ts";
import { fmt, median, pairedRatio, signedPct } from "./_stats.ts";

/** How a side's servers run. */
type Kind =
  | "new" // forklift as built from this checkout: runtime metrics on
  | "old" // forklift before the runtime metrics
  | "bare" // two servers started by hand
  | "prom" // the same, with prom-client's default metrics
  | "otel"; // the same, with OTel's runtime-node instrumentation

const PRELOADS: Partial<Record<Kind, string>> = {
  prom: "scripts/bench/fixtures/prom_client_preload.ts",
  otel: "scripts/bench/fixtures/otel_runtime_preload.ts",
};
const REUSE_PORT_PRELOAD = "scripts/bench/fixtures/reuse_port_preload.ts";

/** Comparisons of the per-request part: the measured side against its anchor. */
const PAIRS: Record<string, { a: Kind; b: Kind; label: string }> = {
  on: { a: "new", b: "old", label: "forklift runtime metrics on vs the build without them" },
  aa: { a: "old", b: "old", label: "A/A, the build without them against itself" },
  prom: { a: "prom", b: "bare", label: "prom-client collectDefaultMetrics() vs none" },
  otel: { a: "otel", b: "bare", label: "OTel runtime-node instrumentation vs none" },
};

/**
 * The revision before the runtime metrics: the first parent of the commit
 * that added `src/reporter/runtime_metrics.ts`.
 */
function baselineRevision(root: string): string {
  const fromEnv = process.env.FORKLIFT_BENCH_BASELINE;
  if (fromEnv) return fromEnv;
  const r = spawnSync("git", [
    "log",
    "--first-parent",
    "--diff-filter=A",
    "--format=%H",
    "--",
    "src/reporter/runtime_metrics.ts",
  ], { cwd: root, encoding: "utf8", timeout: 30_000 });
  const added = r.stdout?.trim().split("\n").pop();
  if (r.status !== 0 || !added) {
    throw new Error("Cannot find the commit that added runtime metrics");
  }
  return `${added}^1`;
}

/**
 * Edits of an exported tree that take the runtime metrics out of its
 * reporter: the host no longer asks for them (no sampler, no probe, the timer
 * at the harvest's pace) and requests are no longer counted in flight. Each
 * edit must find its text once, or the baseline would be the unchanged code.
 */
const SWITCH_OFF: Array<{ file: string; from: string; to: string }> = [
  { file: "src/reporter/host.ts", from: "runtimeMetrics: true,", to: "runtimeMetrics: false," },
  {
    file: "src/reporter/http.ts",
    from: "    if (r[STARTED] === undefined) this.active++;\n",
    to: "",
  },
  { file: "src/reporter/http.ts", from: "    this.active--;\n", to: "" },
  { file: "src/reporter/http.ts", from: "      metrics.active++;\n", to: "" },
];

/** Applies {@linkcode SWITCH_OFF} to the tree exported in `dir`. */
function switchOff(dir: string): void {
  for (const edit of SWITCH_OFF) {
    const path = `${dir}/${edit.file}`;
    const text = readFileSync(path, "utf8");
    if (text.split(edit.from).length !== 2) {
      throw new Error(
        `Cannot switch the runtime metrics off: ${edit.file} does not hold ${
          JSON.stringify(edit.from)
        } once; update SWITCH_OFF in scripts/bench/health.ts`,
      );
    }
    writeFileSync(path, text.replace(edit.from, edit.to));
  }
}

/** Builds the baseline's binary in a temporary directory; returns it and the directory. */
function buildBaseline(ctx: BenchContext): { bin: string; dir: string; rev: string } {
  const off = process.env.FORKLIFT_BENCH_BASELINE === "off";
  const rev = off ? "HEAD" : baselineRevision(ctx.root);
  const head = spawnSync("git", ["rev-parse", "--short", rev], {
    cwd: ctx.root,
    encoding: "utf8",
  }).stdout.trim();
  const short = off ? `${head} metrics off` : head;
  const dir = mkdtempSync(`${tmpdir()}/forklift-baseline-`);
  ctx.log(`health: building the baseline ${short} in ${dir}`);
  const archive = spawnSync(
    "sh",
    ["-c", `git archive "$0" | tar -x -C "$1"`, rev, dir],
    { cwd: ctx.root, encoding: "utf8", timeout: 120_000 },
  );
  if (archive.status !== 0) throw new Error(`git archive ${rev}: ${archive.stderr}`);
  if (off) switchOff(dir);
  // The same dependencies as the checkout's (the bundler reads them).
  symlinkSync(`${ctx.root}node_modules`, `${dir}/node_modules`);
  const build = spawnSync(ctx.runtimes.deno, ["run", "-A", `${dir}/scripts/build.ts`], {
    cwd: dir,
    env: { ...process.env, FORKLIFT_TEST_BUN: ctx.runtimes.bun },
    encoding: "utf8",
    timeout: 600_000,
  });
  const bin = `${dir}/dist/forklift`;
  if (build.status !== 0 || !existsSync(bin)) {
    throw new Error(`Cannot build the baseline ${short}:\n${build.stdout}${build.stderr}`);
  }
  return { bin, dir, rev: short };
}

interface Side {
  port: number;
  pids: number[];
  procs: Started[];
}

function serverArgv(
  ctx: BenchContext,
  runtime: RuntimeName,
  app: App,
  kind: Kind,
  control?: Control,
): string[] {
  const script = `${ctx.root}${FIXTURES[app]}`;
  const forklift = kind === "new" || kind === "old";
  const preloads = [
    ...(PRELOADS[kind] ? [`${ctx.root}${PRELOADS[kind]}`] : []),
    // Bun's node:http has no reusePort: hand-started Express pairs get it from a preload.
    ...(!forklift && runtime === "bun" && app === "express"
      ? [`${ctx.root}${REUSE_PORT_PRELOAD}`]
      : []),
  ];
  const flags = preloads.flatMap((p) => ["--preload", p]);
  return runtime === "deno"
    ? [
      ctx.runtimes.deno,
      "run",
      "-A",
      "--unstable-net",
      ...(control?.denoFlags ?? []),
      ...flags,
      script,
    ]
    : [ctx.runtimes.bun, ...flags, script];
}

async function startSide(
  ctx: BenchContext,
  bins: Record<"new" | "old", string>,
  runtime: RuntimeName,
  app: App,
  kind: Kind,
  workers: number,
  prefix: string[],
  control?: Control,
): Promise<Side> {
  const port = await freePort();
  const env = { ...control?.env, PORT: String(port) };
  const procs: Started[] = [];
  if (kind === "new" || kind === "old") {
    procs.push(start([
      ...prefix,
      bins[kind],
      "run",
      "-w",
      String(workers),
      "--metrics-bind",
      `127.0.0.1:${await freePort()}`,
      "--",
      ...serverArgv(ctx, runtime, app, kind, control),
    ], { cwd: ctx.root, env, deadlineMs: 600_000 }));
  } else {
    for (let i = 0; i < workers; i++) {
      procs.push(start([...prefix, ...serverArgv(ctx, runtime, app, kind, control)], {
        cwd: ctx.root,
        env,
        deadlineMs: 600_000,
      }));
    }
  }
  const done = () => procs.some((p) => p.done());
  try {
    const { pids } = await allAnswering({ proc: { done }, port }, workers, 30_000);
    return { port, pids, procs };
  } catch (e) {
    const out = procs.map((p) => p.output()).join("\n");
    for (const p of procs) await stop(p, "SIGKILL");
    throw new Error(`${runtime} ${app} ${kind}: ${(e as Error).message}\n${out}`);
  }
}

async function stopSide(s: Side | undefined): Promise<void> {
  for (const p of s?.procs ?? []) await stop(p, "SIGTERM", 10_000, s?.pids);
}

/** Each side's CPU per request (µs, from schedstat) over rounds in which both are loaded at once. */
async function perRequest(
  ctx: BenchContext,
  bins: Record<"new" | "old", string>,
  runtime: RuntimeName,
  app: App,
  pair: { a: Kind; b: Kind },
  plan: { blocks: number; rounds: number; seconds: number },
): Promise<[number[], number[]]> {
  const pin = pinning();
  const session = ownSession();
  const script = `${ctx.root}${MIXED}`;
  const out: [number[], number[]] = [[], []];
  const kinds = [pair.a, pair.b];
  for (let b = 0; b < plan.blocks; b++) {
    const sides: Side[] = [];
    try {
      for (const k of b % 2 === 0 ? [0, 1] : [1, 0]) {
        sides[k] = await startSide(ctx, bins, runtime, app, kinds[k], 2, [
          ...pin.server,
          ...session,
        ]);
      }
      // Warm-up: the JIT settles before anything is counted.
      await Promise.all(sides.map((s) => wrk(s.port, 2, pin.client, script)));
      const cpu = (s: Side) => s.pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
      for (let r = 0; r < plan.rounds; r++) {
        const before = sides.map(cpu);
        const loads = await Promise.all(
          sides.map((s) => wrk(s.port, plan.seconds, pin.client, script)),
        );
        loads.forEach((l, k) => {
          if (l.errors) ctx.log(`health: ${runtime} ${app} ${kinds[k]}: ${l.errors}`);
          const used = cpu(sides[k]) - before[k];
          out[k].push(l.requests > 0 ? (used * 1000) / l.requests : NaN);
        });
      }
    } finally {
      for (const s of sides) await stopSide(s);
    }
  }
  return out;
}

interface IdleFigures {
  /** Share of one core over the window. */
  cpu: number;
  anonKiB: number;
  /** Each server's private memory (KiB), in the order they started. */
  anonEach: number[];
}

/**
 * `replicas` servers of each kind per runtime (forklift's with one worker
 * each) idle through the same window; each kind's median CPU and private
 * memory. Memory is read twelve times across the window and averaged per
 * process: an idle heap moves with the collector's own schedule.
 */
async function idleAll(
  ctx: BenchContext,
  bins: Record<"new" | "old", string>,
  windowMs: number,
  replicas: number,
): Promise<Record<string, IdleFigures>> {
  const kinds: Kind[] = ["new", "old", "bare", "prom", "otel"];
  const controls = idleControls();
  const session = ownSession();
  const client = pinning().client;
  const sides: Array<{ key: string; side: Side }> = [];
  try {
    for (let i = 0; i < replicas; i++) {
      for (const runtime of ["deno", "bun"] as const) {
        for (const kind of kinds) {
          // A second baseline: what two identical servers differ by (the A/A row).
          for (const name of kind === "old" ? ["old", "old2"] : [kind]) {
            const s = await startSide(
              ctx,
              bins,
              runtime,
              "hono",
              kind,
              1,
              session,
              controls[runtime],
            );
            sides.push({ key: `${runtime}:${name}`, side: s });
            // A few requests, so the app idles as a server that has served.
            await wrk(s.port, 1, client, `${ctx.root}${MIXED}`);
          }
        }
      }
    }
    // The runtime probe slows down after 250 ms of quiet; the peers' first
    // collection happens within 5 s.
    await sleep(6_000);
    const pid = (s: Side) => s.pids[0];
    const before = sides.map(({ side }) => cpuTicks(pid(side)));
    const mem = sides.map(() => 0);
    const t0 = performance.now();
    const samples = 12;
    for (let k = 0; k < samples; k++) {
      await sleep(windowMs / samples);
      sides.forEach(({ side }, j) => mem[j] += anonymousKiB(pid(side)) / samples);
    }
    const seconds = (performance.now() - t0) / 1000;
    const out: Record<string, IdleFigures> = {};
    for (const key of new Set(sides.map((s) => s.key))) {
      const of = sides.flatMap((s, j) => s.key === key ? [j] : []);
      out[key] = {
        cpu: median(
          of.map((j) => (cpuTicks(pid(sides[j].side)) - before[j]) / ticksPerSecond() / seconds),
        ),
        anonKiB: median(of.map((j) => mem[j])),
        anonEach: of.map((j) => mem[j]),
      };
    }
    return out;
  } finally {
    for (const { side } of sides) await stopSide(side);
  }
}

/**
 * The controls of `FORKLIFT_BENCH_MEMORY` that start every idle server of a
 * runtime alike (`nursery` on Deno, `nojit` on Bun): one per runtime.
 */
function idleControls(): Partial<Record<RuntimeName, Control>> {
  const out: Partial<Record<RuntimeName, Control>> = {};
  for (const runtime of ["deno", "bun"] as const) {
    const named = memoryControls(runtime).find((c) => c !== "long");
    if (named !== undefined) out[runtime] = CONTROLS[named];
  }
  return out;
}

/** A peer's cost as a multiple of forklift's, when forklift's is above zero. */
function versusForklift(peer: number, forklift: number | undefined): string {
  if (forklift === undefined || !Number.isFinite(forklift)) return "forklift's not measured";
  if (forklift <= 0) return "forklift's ≤ 0 in this run: no ratio";
  return `${fmt(peer / forklift, 2)}× forklift's`;
}

const pct = (x: number, digits = 2) => `${fmt(x * 100, digits)}%`;
const spread = (xs: number[]) =>
  `${signedPct(Math.min(...xs))} … ${signedPct(Math.max(...xs))}, n=${xs.length}`;

/**
 * The `health` benchmark.
 *
 * @example Run it as `deno task bench health` does
 * ```ts ignore
 * const rows = await health.run(ctx);
 * console.log(renderTable(rows));
 * ```
 */
export const health: Bench = {
  name: "health",
  summary:
    "worker health's cost (runtime metrics on vs off, idle, master sampling 64) beside prom-client and OTel runtime-node",
  async run(ctx) {
    if (!wrkFound(ctx, "health")) return [];
    const baseline = buildBaseline(ctx);
    const bins = { new: ctx.forklift, old: baseline.bin };
    const rows: Row[] = [];
    try {
      const plan = ctx.quick
        ? { blocks: 1, rounds: 3, seconds: 1 }
        : { blocks: 3, rounds: 4, seconds: 2 };
      const only = process.env.FORKLIFT_BENCH_HEALTH?.split(",");
      const pin = pinning();
      const costs: Record<string, number> = {};
      // Rounds interleave: every comparison loads both of its sides at once.
      for (const runtime of ["deno", "bun"] as const) {
        for (const app of ["hono", "express"] as const) {
          for (const [name, pair] of Object.entries(PAIRS)) {
            if (only !== undefined && !only.includes(`${runtime}:${app}:${name}`)) continue;
            ctx.log(`health: ${runtime} ${app}: ${pair.label}`);
            const [a, b] = await perRequest(ctx, bins, runtime, app, pair, plan);
            const ratios = a.map((x, i) => x / b[i] - 1);
            const cost = pairedRatio(a, b) - 1;
            costs[`${runtime}:${app}:${name}`] = cost;
            const target = name === "on" ? "≤ +1%" : "(info)";
            const vsForklift = name === "prom" || name === "otel"
              ? `; ${versusForklift(cost, costs[`${runtime}:${app}:on`])}`
              : "";
            rows.push({
              bench: "health",
              metric:
                `${app}, ${runtime}: ${pair.label}, server CPU per request (-w 2 / 2 servers, ${pin.note}; median of the rounds' ratios, range ${
                  spread(ratios)
                }${vsForklift})`,
              forklift: `${fmt(median(a), 3)} µs/req`,
              anchor: `${pair.b === "old" ? `${baseline.rev} ` : ""}${fmt(median(b), 3)} µs/req`,
              versus: signedPct(cost),
              target,
              pass: name === "on" ? cost <= 0.01 : null,
            });
          }
        }
      }

      if (only === undefined || only.includes("idle")) {
        const windowMs = ctx.quick ? 10_000 : 60_000;
        ctx.log(`health: idle for ${windowMs / 1000} s`);
        // Two starts of one build differ by a few hundred KiB: the median of
        // five servers a kind resolves a 256 KiB target where three did not.
        const replicas = ctx.quick ? 2 : 5;
        const idle = await idleAll(ctx, bins, windowMs, replicas);
        const controls = idleControls();
        for (const runtime of ["deno", "bun"] as const) {
          const f = (k: string) => idle[`${runtime}:${k}`];
          const under = controls[runtime] ? `, every server ${controls[runtime].what}` : "";
          const cpuOn = f("new").cpu - f("old").cpu;
          const memOn = f("new").anonKiB - f("old").anonKiB;
          const add = (
            what: string,
            a: IdleFigures,
            b: IdleFigures,
            anchor: string,
            target: { cpu: string; mem: string; pass: boolean | null },
          ) => {
            const cpu = a.cpu - b.cpu;
            const mem = a.anonKiB - b.anonKiB;
            // Under a control the servers do not start as users start them: a figure, not a verdict.
            const judged = target.pass !== null && under === "";
            // Servers started side by side in the same replica pair up.
            const pairs = a.anonEach.map((x, i) => x - b.anonEach[i]).filter(Number.isFinite);
            const range = pairs.length > 1
              ? `, pairwise range ${fmt(Math.min(...pairs), 4)} … ${fmt(Math.max(...pairs), 4)} KiB`
              : "";
            const cmp = target.pass === null && !what.startsWith("A/A")
              ? { cpu: ` (${versusForklift(cpu, cpuOn)})`, mem: ` (${versusForklift(mem, memOn)})` }
              : { cpu: "", mem: "" };
            rows.push({
              bench: "health",
              metric: `idle hono worker, ${runtime}, ${windowMs / 1000} s${under}: ${what}, CPU (${
                replicas > 1 ? `median of ${replicas} servers, ` : ""
              }utime+stime)${cmp.cpu}`,
              forklift: `${pct(a.cpu, 2)} of a core`,
              anchor: `${anchor} ${pct(b.cpu, 2)}`,
              versus: `${cpu >= 0 ? "+" : "−"}${pct(Math.abs(cpu), 2)}`,
              target: judged ? target.cpu : "(info)",
              pass: judged ? cpu <= 0.002 : null,
            });
            rows.push({
              bench: "health",
              metric:
                `idle hono worker, ${runtime}${under}: ${what}, private memory (Anonymous, smaps_rollup, mean of 12 reads across the window${
                  replicas > 1 ? `, median of ${replicas} servers${range}` : ""
                })${cmp.mem}`,
              forklift: `${fmt(a.anonKiB / 1024, 4)} MiB`,
              anchor: `${anchor} ${fmt(b.anonKiB / 1024, 4)} MiB`,
              versus: `${mem >= 0 ? "+" : "−"}${fmt(Math.abs(mem), 3)} KiB`,
              target: judged ? target.mem : "(info)",
              pass: judged ? mem <= 256 : null,
            });
          };
          const info = { cpu: "(info)", mem: "(info)", pass: null };
          add(
            "forklift runtime metrics on vs the build without them",
            f("new"),
            f("old"),
            baseline.rev,
            {
              cpu: "≤ +0.2%",
              mem: "≤ +256 KiB",
              pass: true,
            },
          );
          add(
            "A/A, the build without them against itself",
            f("old2"),
            f("old"),
            baseline.rev,
            info,
          );
          add("prom-client collectDefaultMetrics() vs none", f("prom"), f("bare"), "bare", info);
          add("OTel runtime-node instrumentation vs none", f("otel"), f("bare"), "bare", info);
        }
      }

      if (only === undefined) {
        for (const runtime of ["bun", "deno"] as const) {
          const r = await runLoop<
            { workers: number; meanMs: number; share: number; firstShare: number }
          >(
            ctx,
            runtime,
            "process_sampler.ts",
            ["64", "--json"],
          );
          rows.push({
            bench: "health",
            metric: `master on ${runtime}${
              runtime === "bun" ? " (as the binary)" : ""
            }: sampling ${r.workers} process groups from /proc every 5 s (mean pass ${
              fmt(r.meanMs, 3)
            } ms; first pass ${pct(r.firstShare, 2)})`,
            forklift: `${pct(r.share, 3)} of a core`,
            anchor: "0%",
            versus: `+${pct(r.share, 3)}`,
            target: "≤ 1%",
            pass: r.share <= 0.01,
          });
        }
      }
    } finally {
      rmSync(baseline.dir, { recursive: true, force: true });
    }
    return rows;
  },
};
