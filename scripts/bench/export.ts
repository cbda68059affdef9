/**
 * `export`: the master's main-thread time for one OTLP/HTTP protobuf export
 * body of 10,000 series, against the OpenTelemetry JS SDK (its reader's
 * collect and its protobuf serializer) on the same series, on Deno and on
 * Bun. `export_loop.ts` runs under each runtime as a child process. There is
 * no target: the row shows what an export costs a master.
 *
 * @module
 */
import type { Bench, BenchContext } from "./_context.ts";
import { runLoop } from "./_process.ts";
import type { Row } from "./_report.ts";
import type { RuntimeName } from "./_runtimes.ts";
import { fmt } from "./_stats.ts";

interface LoopResult {
  series: number;
  ms: { forklift: number; forkliftJson: number; otel: number };
  bytes: { forklift: number; forkliftJson: number; otel: number };
}

function measure(ctx: BenchContext, name: RuntimeName): Promise<LoopResult> {
  return runLoop<LoopResult>(ctx, name, "export_loop.ts", ["--rounds", ctx.quick ? "3" : "11"]);
}

/** The `export` benchmark. */
export const exportCost: Bench = {
  name: "export",
  summary: "ms of master main thread per OTLP export of 10k series, vs the OpenTelemetry SDK",
  async run(ctx) {
    const rows: Row[] = [];
    for (const name of ["deno", "bun"] as const) {
      ctx.log(`export: ${name}`);
      const r = await measure(ctx, name);
      const kb = (n: number) => `${fmt(n / 1024)} KiB`;
      rows.push({
        bench: "export",
        metric: `one OTLP export of ${r.series} series, ${name}, ms of main thread (protobuf ${
          kb(r.bytes.forklift)
        } vs ${kb(r.bytes.otel)}; http/json ${fmt(r.ms.forkliftJson)} ms, ${
          kb(r.bytes.forkliftJson)
        })`,
        forklift: `${fmt(r.ms.forklift)} ms`,
        anchor: `OTel SDK ${fmt(r.ms.otel)} ms`,
        versus: `${fmt(r.ms.forklift / r.ms.otel, 2)}×`,
        target: "(info)",
        pass: null,
      });
    }
    return rows;
  },
};
