/**
 * `record`: nanoseconds per `counter.add(1, {a, b})` and per
 * `histogram.record(v, {a, b})`, forklift's reporter against the
 * OpenTelemetry JS SDK, on Deno and on Bun. `record_loop.ts` runs under each
 * runtime as a child process and measures all cases in the same process.
 * Target: forklift at most 1/10 of OpenTelemetry's cost per call.
 *
 * @module
 */
import type { Bench, BenchContext } from "./_context.ts";
import { runLoop } from "./_process.ts";
import type { Row } from "./_report.ts";
import type { RuntimeName } from "./_runtimes.ts";
import { fmt } from "./_stats.ts";

interface LoopResult {
  cases: Record<string, { median: number; best: number; calls: number }>;
  mismatches: string[];
}

const TARGET = 0.05;

function measure(ctx: BenchContext, name: RuntimeName): Promise<LoopResult> {
  return runLoop<LoopResult>(ctx, name, "record_loop.ts", [
    "--rounds",
    ctx.quick ? "5" : "21",
    "--round-ms",
    ctx.quick ? "30" : "80",
  ]);
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
        const otel = r.cases[`otel.${kind}`];
        const floor = r.cases[`floor.${kind}`];
        const call = kind === "counter" ? "counter.add(1, {a, b})" : "histogram.record(v, {a, b})";
        const ratio = fk.median / otel.median;
        rows.push({
          bench: "record",
          metric: `${call}, ${name}, ns/call (Map floor ${fmt(floor.median)} ns)`,
          forklift: `${fmt(fk.median)} ns`,
          anchor: `OTel SDK ${fmt(otel.median)} ns`,
          versus: `${fmt(ratio, 2)}×`,
          target: `≤ ${TARGET}×`,
          pass: ratio <= TARGET && r.mismatches.length === 0,
        });
      }
    }
    return rows;
  },
};
