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
import { mkdirSync } from "node:fs";
import type { Bench, BenchContext } from "./_context.ts";
import { type App, FIXTURES, MIXED } from "./apps.ts";
import { pollUntil } from "./_http.ts";
import { freePort, start, type Started, stop } from "./_process.ts";
import type { Row } from "./_report.ts";
import { type RuntimeName, serverArgv } from "./_runtimes.ts";
import { fmt, median, pairedRatio } from "./_stats.ts";
import { loadTogether, ownSession, pinning, wrk, wrkFound } from "./overhead.ts";

/** The preload builds, in the order the table shows them. */
const VARIANTS: Array<{ name: string; what: string }> = [
  { name: "full", what: "the preload as shipped" },
  { name: "no_clock", what: "without the clock" },
  { name: "no_method", what: "without reading the request's method" },
  { name: "wrapper", what: "the wrapper alone (no clock, method or recording)" },
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

/** The apps measured, and how each row names it. */
const APPS: Array<{ app: App; label: string }> = [
  { app: "hello", label: "hello-world" },
  { app: "hono", label: "Hono app (mixed.lua)" },
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
  if (name === "deno_otel") {
    return "Deno's own OpenTelemetry (OTEL_DENO=true, traces off), not forklift";
  }
  return VARIANTS.find((v) => v.name === name)?.what ?? name;
}

/**
 * Starts `names` (bare, bare_again, deno_otel or a variant) serving `app` side
 * by side, loads them together ({@linkcode loadTogether}) and returns each
 * server's CPU time per request per round, in the order of `names`.
 */
async function measure(
  ctx: BenchContext,
  runtime: RuntimeName,
  app: App,
  names: string[],
  files: Map<string, string>,
  rounds: number,
  seconds: number,
): Promise<number[][]> {
  const pin = pinning();
  const session = ownSession();
  const script = app === "hello" ? undefined : `${ctx.root}${MIXED}`;
  const servers: Array<{ name: string; proc: Started; port: number }> = [];
  try {
    for (const name of names) {
      const port = await freePort();
      const { argv, env } = name === "deno_otel"
        ? {
          argv: serverArgv(ctx.runtimes, runtime, `${ctx.root}${FIXTURES[app]}`),
          env: DENO_OTEL_ENV,
        }
        : serverCommand(ctx, runtime, app, files.get(name));
      const proc = start([...pin.server, ...session, ...argv], {
        cwd: ctx.root,
        env: { ...env, PORT: String(port) },
        deadlineMs: 1_800_000,
      });
      servers.push({ name, proc, port });
    }
    for (const s of servers) {
      const up = await pollUntil(s.port, () => true, performance.now() + 20_000, s.proc.done);
      if (up === undefined) throw new Error(`${s.name} did not answer:\n${s.proc.output()}`);
    }
    // Warm-up: let the JIT settle before the measured rounds.
    await Promise.all(servers.map((s) => wrk(s.port, 1, pin.client, script)));
    const loads = await loadTogether(
      servers.map((s) => ({ port: s.port, pids: [s.proc.pid] })),
      rounds,
      seconds,
      pin.client,
      script,
    );
    return loads.map((l) => l.cpuUs);
  } finally {
    for (const s of servers) await stop(s.proc, "SIGKILL");
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
    for (const runtime of ["deno", "bun"] as const) {
      const files = buildVariants(ctx, runtime);
      for (const { app, label } of APPS) {
        ctx.log(`parts: ${runtime} ${label}, ${rounds} rounds of ${seconds} s (${pinning().note})`);
        const names = ["bare", "bare_again", ...VARIANTS.map((v) => v.name)];
        if (runtime === "deno" && app === "hello") names.push("deno_otel");
        const cpuUs = await measure(ctx, runtime, app, names, files, rounds, seconds);
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
      }
    }
    return rows;
  },
};
