/**
 * `parts`: where the injected reporter's per-request cost goes. Each app runs
 * under the bare runtime, twice without a preload (the second bare server is
 * the A/A row, the resolution of the others) and once with each of the
 * preload's builds (`fixtures/parts/`): as shipped, without the clock, without
 * reading the request's method, and the wrapper alone. The apps are
 * hello-world, whose handler does nothing else, and the Hono app of `apps`
 * (`mixed.lua`), a router that reads the method and URL itself. On Deno, the
 * runtime's own OpenTelemetry instrumentation of `Deno.serve` (metrics only)
 * runs beside hello-world for scale. The servers run side by side on one
 * pinned core, each in a session of its own, and in each round one wrk per
 * server loads them all at once; each round's CPU time per request is set
 * against the first bare server's in the same round. Informational: it
 * explains the `overhead` and `apps` rows rather than judging them.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import process from "node:process";
import { mkdirSync } from "node:fs";
import type { Bench, BenchContext } from "./_context.ts";
import { type App, FIXTURES, MIXED } from "./apps.ts";
import { allAnswering, masterArgv } from "./_forklift.ts";
import { cpuTicks, ticksPerSecond } from "./idle.ts";
import { freePort, start, type Started, stop } from "./_process.ts";
import type { Row } from "./_report.ts";
import { type RuntimeName, serverArgv } from "./_runtimes.ts";
import { fmt, median, pairedRatio } from "./_stats.ts";
import { loadTogether, ownSession, pinning, wrk, wrkFound } from "./overhead.ts";

/**
 * The preload builds, in the order the table shows them; `node` ones only
 * for the `node:http` app (the response's `end` patch and the request hook).
 */
const VARIANTS: Array<{ name: string; what: string; node?: boolean }> = [
  { name: "full", what: "the preload as shipped" },
  { name: "no_clock", what: "without the clock" },
  { name: "no_method", what: "without reading the request's method" },
  { name: "wrapper", what: "the wrapper alone (no clock, method or recording)" },
  {
    name: "hooks_only",
    what: "the node:http patches alone (emit and end, calling hooks that do nothing)",
    node: true,
  },
  {
    name: "no_end",
    what: "the request hook without the end patch (nothing recorded)",
    node: true,
  },
];

/** Bundles each variant for `runtime`, as `scripts/build.ts` bundles the preload. */
function buildVariants(ctx: BenchContext, runtime: RuntimeName): Map<string, string> {
  const dir = `${ctx.root}dist/bench/parts/${runtime}`;
  mkdirSync(dir, { recursive: true });
  const out = new Map<string, string>();
  for (const { name } of VARIANTS) {
    const file = `${dir}/${name}.js`;
    const format = runtime === "deno"
      ? ["--target=node", "--format=esm"]
      : ["--target=bun", "--format=cjs"];
    const r = spawnSync(ctx.runtimes.bun, [
      "build",
      `${ctx.root}scripts/bench/fixtures/parts/${name}.ts`,
      ...format,
      "--minify",
      "--outfile",
      file,
    ], { cwd: ctx.root, encoding: "utf8", timeout: 120_000 });
    if (r.status !== 0) throw new Error(`Cannot build ${file}: ${r.stderr}`);
    out.set(name, file);
  }
  return out;
}

/**
 * Deno's built-in OpenTelemetry, metrics only: traces sampled off, console not
 * captured, the export interval long and its endpoint a closed port.
 */
const DENO_OTEL_ENV: Record<string, string> = {
  OTEL_DENO: "true",
  OTEL_TRACES_SAMPLER: "always_off",
  OTEL_DENO_CONSOLE: "ignore",
  OTEL_METRIC_EXPORT_INTERVAL: "600000",
  OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9",
};

/**
 * The apps measured, how each row names it, and on which runtimes. Express
 * runs on Bun only: Bun's node:http sits on its native server, the case the
 * `node` variants take apart.
 */
const APPS: Array<{ app: App; label: string; runtimes: RuntimeName[] }> = [
  { app: "hello", label: "hello-world", runtimes: ["deno", "bun"] },
  { app: "hono", label: "Hono app (mixed.lua)", runtimes: ["deno", "bun"] },
  { app: "express", label: "Express app (mixed.lua)", runtimes: ["bun"] },
];

/** The argv and env that run `app` on `runtime`, preloading `preload` if given. */
function serverCommand(
  ctx: BenchContext,
  runtime: RuntimeName,
  app: App,
  preload: string | undefined,
): { argv: string[]; env: Record<string, string> } {
  const argv = serverArgv(ctx.runtimes, runtime, `${ctx.root}${FIXTURES[app]}`);
  if (preload === undefined) return { argv, env: {} };
  if (runtime === "bun") return { argv, env: { BUN_OPTIONS: `--preload ${preload}` } };
  const script = argv.pop()!;
  return { argv: [...argv, "--preload", preload, script], env: {} };
}

/** What a row says a server is. */
function rowLabel(name: string): string {
  if (name === "bare_again") return "A/A, a second bare server (the resolution of the rows)";
  if (name === "forklift") return "forklift run -w 1 (the worker; binary master on the same core)";
  if (name === "forklift_no_inject") {
    return "forklift run -w 1 --no-inject (a worker without the reporter: the master's process alone)";
  }
  if (name === "deno_otel") {
    return "Deno's own OpenTelemetry (OTEL_DENO=true, traces off), not forklift";
  }
  return VARIANTS.find((v) => v.name === name)?.what ?? name;
}

/** What `measure` found: each server's CPU time per request per round, and the master's. */
interface Measured {
  cpuUs: number[][];
  /** The forklift master's CPU time per request of its worker, over all rounds (when one ran). */
  masterUs?: number;
}

/**
 * Starts `names` (bare, bare_again, deno_otel, forklift or a variant) serving
 * `app` side by side, loads them together ({@linkcode loadTogether}) and
 * returns each server's CPU time per request per round, in the order of
 * `names`. `forklift` is `forklift run -w 1` with its master on the same core:
 * its row is the worker's CPU, and the master's own goes beside it.
 */
async function measure(
  ctx: BenchContext,
  runtime: RuntimeName,
  app: App,
  names: string[],
  files: Map<string, string>,
  rounds: number,
  seconds: number,
): Promise<Measured> {
  const pin = pinning();
  const session = ownSession();
  const script = app === "hello" ? undefined : `${ctx.root}${MIXED}`;
  const servers: Array<{ name: string; proc: Started; port: number; pid: number }> = [];
  try {
    for (const name of names) {
      const port = await freePort();
      const appArgv = serverArgv(ctx.runtimes, runtime, `${ctx.root}${FIXTURES[app]}`);
      const { argv, env } = name === "deno_otel"
        ? { argv: appArgv, env: DENO_OTEL_ENV }
        : name === "forklift" || name === "forklift_no_inject"
        ? {
          argv: [
            ...masterArgv(ctx, "binary"),
            "run",
            "-w",
            "1",
            "--metrics-bind",
            `127.0.0.1:${await freePort()}`,
            ...(name === "forklift" ? [] : ["--no-inject"]),
            "--",
            ...appArgv,
          ],
          env: {},
        }
        : serverCommand(ctx, runtime, app, files.get(name));
      const proc = start([...pin.server, ...session, ...argv], {
        cwd: ctx.root,
        env: { ...env, PORT: String(port) },
        deadlineMs: 1_800_000,
      });
      servers.push({ name, proc, port, pid: proc.pid });
    }
    for (const s of servers) {
      const { pids } = await allAnswering({ port: s.port, proc: s.proc }, 1, 30_000);
      s.pid = pids[0];
    }
    // Warm-up: let the JIT settle before the measured rounds.
    await Promise.all(servers.map((s) => wrk(s.port, 1, pin.client, script)));
    const master = servers.find((s) => s.name === "forklift");
    const before = master === undefined ? 0 : cpuTicks(master.proc.pid);
    const loads = await loadTogether(
      servers.map((s) => ({ port: s.port, pids: [s.pid] })),
      rounds,
      seconds,
      pin.client,
      script,
    );
    let masterUs: number | undefined;
    if (master !== undefined) {
      const used = (cpuTicks(master.proc.pid) - before) * 1e6 / ticksPerSecond();
      const requests = loads[servers.indexOf(master)].rps.reduce((a, r) => a + r * seconds, 0);
      masterUs = used / requests;
    }
    return { cpuUs: loads.map((l) => l.cpuUs), masterUs };
  } finally {
    for (const s of servers) {
      await stop(s.proc, s.name.startsWith("forklift") ? "SIGTERM" : "SIGKILL", 10_000);
    }
  }
}

/** The `parts` benchmark. */
export const parts: Bench = {
  name: "parts",
  summary: "where the reporter's per-request cost goes (preload variants vs bare, info)",
  async run(ctx) {
    if (!wrkFound(ctx, "parts")) return [];
    const rows: Row[] = [];
    const rounds = ctx.quick ? 4 : 20;
    const seconds = ctx.quick ? 1 : 2;
    // `FORKLIFT_BENCH_PARTS=bun:express` runs only the cases named (runtime:app).
    const only = process.env.FORKLIFT_BENCH_PARTS?.split(",");
    for (const runtime of ["deno", "bun"] as const) {
      const cases = APPS.filter(({ app, runtimes }) =>
        runtimes.includes(runtime) && (only === undefined || only.includes(`${runtime}:${app}`))
      );
      if (cases.length === 0) continue;
      const files = buildVariants(ctx, runtime);
      for (const { app, label } of cases) {
        ctx.log(`parts: ${runtime} ${label}, ${rounds} rounds of ${seconds} s (${pinning().note})`);
        const node = app === "express";
        const names = [
          "bare",
          "bare_again",
          ...VARIANTS.filter((v) => node || !v.node).map((v) => v.name),
        ];
        if (runtime === "deno" && app === "hello") names.push("deno_otel");
        if (node) names.push("forklift", "forklift_no_inject");
        // `FORKLIFT_BENCH_PARTS_ROWS=full,forklift` keeps only those rows (and the two bare servers).
        const keep = process.env.FORKLIFT_BENCH_PARTS_ROWS?.split(",");
        if (keep !== undefined) {
          names.splice(0, names.length, ...names.filter((n, i) => i < 2 || keep.includes(n)));
        }
        const { cpuUs, masterUs } = await measure(ctx, runtime, app, names, files, rounds, seconds);
        const bare = cpuUs[0];
        for (let k = 1; k < names.length; k++) {
          const ratio = pairedRatio(cpuUs[k], bare);
          rows.push({
            bench: "parts",
            metric: `${runtime} ${label}, worker CPU per request: ${rowLabel(names[k])}`,
            forklift: `${fmt(median(cpuUs[k]), 3)} µs/req`,
            anchor: `bare ${fmt(median(bare), 3)} µs/req`,
            versus: `${ratio >= 1 ? "+" : "−"}${fmt(Math.abs(ratio - 1) * 100, 2)}%`,
            target: "(info)",
            pass: null,
          });
        }
        if (masterUs !== undefined) {
          rows.push({
            bench: "parts",
            metric:
              `${runtime} ${label}, the master's own CPU per request of its worker (forklift run -w 1, master on the servers' core, not counted in the rows above)`,
            forklift: `${fmt(masterUs, 3)} µs/req`,
            anchor: `bare ${fmt(median(bare), 3)} µs/req`,
            versus: `+${fmt((masterUs / median(bare)) * 100, 2)}%`,
            target: "(info)",
            pass: null,
          });
        }
      }
    }
    return rows;
  },
};
