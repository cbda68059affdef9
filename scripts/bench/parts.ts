/**
 * `parts`: where the injected reporter's per-request cost goes. The fixture
 * runs under the bare runtime, once without a preload and once with each of
 * four builds of it (`fixtures/parts/`): as shipped, without the clock,
 * without reading the request's method, and the wrapper alone. On Deno, the
 * runtime's own OpenTelemetry instrumentation of `Deno.serve` (metrics only)
 * runs beside them for scale. The servers run side by side on one pinned core,
 * each in a session of its own, and in each round one wrk per server loads
 * them all at once; each round's CPU time per request is set against the bare
 * server's in the same round. Informational: it explains the
 * `overhead` rows rather than judging them.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import type { Bench, BenchContext } from "./_context.ts";
import { FIXTURE } from "./_forklift.ts";
import { pollUntil } from "./_http.ts";
import { freePort, start, type Started, stop } from "./_process.ts";
import type { Row } from "./_report.ts";
import { type RuntimeName, serverArgv } from "./_runtimes.ts";
import { fmt, median, pairedRatio } from "./_stats.ts";
import { cpuTicks, ticksPerSecond } from "./idle.ts";
import { ownSession, pinning, wrk, wrkFound } from "./overhead.ts";

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

/** The argv and env that run the fixture on `runtime`, preloading `preload` if given. */
function serverCommand(
  ctx: BenchContext,
  runtime: RuntimeName,
  preload: string | undefined,
): { argv: string[]; env: Record<string, string> } {
  const argv = serverArgv(ctx.runtimes, runtime, `${ctx.root}${FIXTURE}`);
  if (preload === undefined) return { argv, env: {} };
  if (runtime === "bun") return { argv, env: { BUN_OPTIONS: `--preload ${preload}` } };
  const script = argv.pop()!;
  return { argv: [...argv, "--preload", preload, script], env: {} };
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
    const pin = pinning();
    const session = ownSession();
    const tick = 1000 / ticksPerSecond();
    for (const runtime of ["deno", "bun"] as const) {
      ctx.log(`parts: ${runtime}, ${rounds} rounds of ${seconds} s (${pin.note})`);
      const files = buildVariants(ctx, runtime);
      const servers: Array<{ name: string; proc: Started; port: number; cpuUs: number[] }> = [];
      try {
        const names = ["bare", ...VARIANTS.map((v) => v.name)];
        if (runtime === "deno") names.push("deno_otel");
        for (const name of names) {
          const port = await freePort();
          const { argv, env } = name === "deno_otel"
            ? {
              argv: serverArgv(ctx.runtimes, runtime, `${ctx.root}${FIXTURE}`),
              env: DENO_OTEL_ENV,
            }
            : serverCommand(ctx, runtime, files.get(name));
          const proc = start([...pin.server, ...session, ...argv], {
            cwd: ctx.root,
            env: { ...env, PORT: String(port) },
            deadlineMs: 1_800_000,
          });
          servers.push({ name, proc, port, cpuUs: [] });
        }
        for (const s of servers) {
          const up = await pollUntil(s.port, () => true, performance.now() + 20_000, s.proc.done);
          if (up === undefined) throw new Error(`${s.name} did not answer:\n${s.proc.output()}`);
        }
        // Warm-up: let the JIT settle before the measured rounds.
        await Promise.all(servers.map((s) => wrk(s.port, 1, pin.client)));
        for (let r = 0; r < rounds; r++) {
          const before = servers.map((s) => cpuTicks(s.proc.pid));
          const results = await Promise.all(servers.map((s) => wrk(s.port, seconds, pin.client)));
          results.forEach((res, k) => {
            const s = servers[k];
            const used = (cpuTicks(s.proc.pid) - before[k]) * tick;
            s.cpuUs.push(res.requests > 0 ? (used * 1000) / res.requests : NaN);
          });
        }
      } finally {
        for (const s of servers) await stop(s.proc, "SIGKILL");
      }
      const bare = servers[0];
      for (const s of servers.slice(1)) {
        const ratio = pairedRatio(s.cpuUs, bare.cpuUs);
        const what = VARIANTS.find((v) => v.name === s.name)?.what ??
          "Deno's own OpenTelemetry (OTEL_DENO=true, traces off), not forklift";
        rows.push({
          bench: "parts",
          metric: `${runtime} hello-world, worker CPU per request: ${what}`,
          forklift: `${fmt(median(s.cpuUs), 3)} µs/req`,
          anchor: `bare ${fmt(median(bare.cpuUs), 3)} µs/req`,
          versus: `${ratio >= 1 ? "+" : "−"}${fmt(Math.abs(ratio - 1) * 100, 2)}%`,
          target: "(info)",
          pass: null,
        });
      }
    }
    return rows;
  },
};
