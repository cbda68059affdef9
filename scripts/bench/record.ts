/**
 * `record`: nanoseconds per `counter.add(1, {a, b})` and per
 * `histogram.record(v, {a, b})`, forklift's reporter against the
 * OpenTelemetry JS SDK, on Deno and on Bun. `record_loop.ts` runs under each
 * runtime as a child process and measures all cases in the same process, in
 * interleaved rounds. Target: forklift at most 1/20 of OpenTelemetry's cost
 * per call, as the median of the rounds' ratios (each round measures both
 * back to back, so drift slower than a round cancels out); the range of those
 * ratios is the spread, and an A/A row (a second forklift instrument against
 * the first) shows how far two measures of the same code differ. The figures
 * are the CPU time of the process (every thread, so the OTel SDK's collector
 * work counts), which a neighbour's load on a shared machine moves less than
 * the wall clock; the wall clock's ratio is given beside it. Beside them, the
 * floor of any recording that reads its attributes by value: the object made
 * at the call and its names and values read once.
 *
 * @module
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Bench, BenchContext } from "./_context.ts";
import { runLoop } from "./_process.ts";
import type { Row } from "./_report.ts";
import type { RuntimeName } from "./_runtimes.ts";
import { fmt, min, pairedRatio } from "./_stats.ts";
import type { LoopCase } from "./record_loop.ts";

interface LoopResult {
  cases: Record<string, LoopCase>;
  mismatches: string[];
}

const TARGET = 0.05;

async function measure(ctx: BenchContext, name: RuntimeName): Promise<LoopResult> {
  const dir = mkdtempSync(join(tmpdir(), "forklift-record-"));
  try {
    const out = join(dir, "result.json");
    await runLoop<{ out: string }>(ctx, name, "record_loop.ts", [
      "--rounds",
      ctx.quick ? "5" : "21",
      "--round-ms",
      ctx.quick ? "30" : "80",
      "--out",
      out,
    ]);
    return JSON.parse(readFileSync(out, "utf8"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The per-round ratios `a / b` in CPU time: their median and range, as the rows print them. */
function ratios(a: LoopCase, b: LoopCase): { median: number; low: number; high: number } {
  const xs = a.cpuRounds.map((x, i) => x / b.cpuRounds[i]);
  return { median: pairedRatio(a.cpuRounds, b.cpuRounds), low: min(xs), high: Math.max(...xs) };
}

/** The `record` benchmark. */
export const record: Bench = {
  name: "record",
  summary: "ns per counter.add / histogram.record with attributes, vs the OpenTelemetry SDK",
  async run(ctx) {
    const rows: Row[] = [];
    for (const name of ["deno", "bun"] as const) {
      ctx.log(`record: ${name}`);
      const r = await measure(ctx, name);
      if (r.mismatches.length > 0) {
        ctx.log(`record: ${name}: calls lost: ${r.mismatches.join(", ")}`);
      }
      for (const kind of ["counter", "histogram"] as const) {
        const fk = r.cases[`forklift.${kind}`];
        const again = r.cases[`again.${kind}`];
        const otel = r.cases[`otel.${kind}`];
        const floor = r.cases[`floor.${kind}`];
        const read = r.cases.read;
        const call = kind === "counter" ? "counter.add(1, {a, b})" : "histogram.record(v, {a, b})";
        const n = fk.rounds.length;
        const vs = ratios(fk, otel);
        const wall = pairedRatio(fk.rounds, otel.rounds);
        rows.push({
          bench: "record",
          metric: `${call}, ${name}, CPU ns/call, median of the ${n} rounds' ratios, range ${
            fmt(vs.low, 2)
          }× … ${fmt(vs.high, 2)}×; wall clock ${fmt(wall, 2)}× (Map floor ${
            fmt(floor.cpuMedian)
          } ns; making and reading the attributes object alone ${fmt(read.cpuMedian)} ns, ${
            fmt(pairedRatio(read.cpuRounds, otel.cpuRounds), 2)
          }×)`,
          forklift: `${fmt(fk.cpuMedian)} ns`,
          anchor: `OTel SDK ${fmt(otel.cpuMedian)} ns`,
          versus: `${fmt(vs.median, 2)}×`,
          target: `≤ ${TARGET}×`,
          pass: vs.median <= TARGET && r.mismatches.length === 0,
        });
        const aa = ratios(again, fk);
        const aaOtel = pairedRatio(again.cpuRounds, otel.cpuRounds);
        rows.push({
          bench: "record",
          metric:
            `${call}, ${name}, CPU ns/call, A/A: a second forklift instrument against the first, median of the ${n} rounds' ratios, range ${
              fmt(aa.low, 3)
            }× … ${fmt(aa.high, 3)}× (against the OTel SDK: ${fmt(aaOtel, 2)}×)`,
          forklift: `${fmt(again.cpuMedian)} ns`,
          anchor: `${fmt(fk.cpuMedian)} ns`,
          versus: `${fmt(aa.median, 3)}×`,
          target: "(info)",
          pass: null,
        });
      }
    }
    return rows;
  },
};
