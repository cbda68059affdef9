/**
 * forklift's benchmarks. Each one measures forklift and its anchor in the
 * same run and reports the ratio or difference against its target; the table
 * is printed and written into `docs/benchmarks.md`.
 *
 * Usage: deno task bench [--quick] [--build] [--no-write] [NAME...]
 *
 * NAME is any of record, overhead, apps, parts, startup, respawn, drain, idle, export, scale,
 * dashboard, health (all when none).
 * `--quick` runs fewer rounds (a look, not figures to publish), `--build`
 * rebuilds `dist/forklift` first, `--no-write` leaves the docs page alone.
 * Deno and Bun come from `FORKLIFT_TEST_DENO` / `FORKLIFT_TEST_BUN`, the
 * runtime running this script, or npx.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { cpus, totalmem } from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";
import type { Bench, BenchContext } from "./_context.ts";
import { forkliftBinary } from "./_forklift.ts";
import { killAll } from "./_process.ts";
import { renderTable, type Row, writeResults } from "./_report.ts";
import { findBun, findDeno, versionOf } from "./_runtimes.ts";
import { apps } from "./apps.ts";
import { dashboard } from "./dashboard.ts";
import { drain } from "./drain.ts";
import { exportCost } from "./export.ts";
import { health } from "./health.ts";
import { idle } from "./idle.ts";
import { overhead } from "./overhead.ts";
import { parts } from "./parts.ts";
import { record } from "./record.ts";
import { respawn } from "./respawn.ts";
import { scale } from "./scale.ts";
import { startup } from "./startup.ts";

const BENCHES: Bench[] = [
  record,
  overhead,
  apps,
  parts,
  startup,
  respawn,
  drain,
  idle,
  exportCost,
  scale,
  dashboard,
  health,
];
const root = new URL("../..", import.meta.url).pathname;

const { values: opts, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    quick: { type: "boolean", default: false },
    build: { type: "boolean", default: false },
    "no-write": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (opts.help) {
  console.log("Usage: deno task bench [--quick] [--build] [--no-write] [NAME...]\n");
  for (const b of BENCHES) console.log(`  ${b.name.padEnd(9)} ${b.summary}`);
  process.exit(0);
}
const unknown = positionals.filter((n) => !BENCHES.some((b) => b.name === n));
if (unknown.length > 0) {
  console.error(
    `Unknown benchmark ${JSON.stringify(unknown[0])}: expected one of ${
      BENCHES.map((b) => b.name).join(", ")
    }`,
  );
  process.exit(2);
}
const selected = positionals.length === 0
  ? BENCHES
  : BENCHES.filter((b) => positionals.includes(b.name));

const log = (line: string) => console.error(`bench: ${line}`);
const runtimes = { deno: findDeno(), bun: findBun() };
const needsBinary = selected.some((b) => b.name !== "record" && b.name !== "export");
const ctx: BenchContext = {
  root,
  runtimes,
  forklift: needsBinary ? forkliftBinary(root, runtimes, opts.build, log) : "",
  quick: opts.quick,
  log,
};

// Whatever happens, no process started here outlives the run.
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

const rows: Row[] = [];
const ran: string[] = [];
let failed = false;
try {
  for (const b of selected) {
    try {
      const got = await b.run(ctx);
      if (got.length > 0) {
        rows.push(...got);
        ran.push(b.name);
      }
    } catch (e) {
      failed = true;
      log(`${b.name} failed: ${(e as Error).message}`);
    } finally {
      killAll();
    }
  }
} finally {
  killAll();
}

const cpu = cpus();
const run = {
  date: new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC",
  machine: `${cpu.length} cores (${cpu[0]?.model.trim() ?? "unknown CPU"}), ${
    Math.round(totalmem() / 2 ** 30)
  } GiB, ${process.platform}`,
  runtimes: `${versionOf("deno", runtimes.deno)}, ${versionOf("bun", runtimes.bun)}${
    opts.quick ? ", --quick" : ""
  }`,
};
console.log(`\n${run.date} · ${run.machine} · ${run.runtimes}\n`);
console.log(renderTable(rows));
if (!opts["no-write"] && ran.length > 0) {
  writeResults(
    `${root}docs/benchmarks.md`,
    run,
    ran,
    rows,
    BENCHES.map((b) => b.name),
  );
  // The page is held to `deno fmt --check` like every other file.
  spawnSync(runtimes.deno, ["fmt", "-q", `${root}docs/benchmarks.md`], { cwd: root });
  console.log("\nwritten to docs/benchmarks.md");
}
process.exit(failed ? 1 : 0);
