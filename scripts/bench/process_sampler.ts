/**
 * The master's cost of sampling workers' processes: one pass of the process
 * sampler over 64 real sleeping processes, each the leader of its own group
 * as a worker is, with whatever else runs on the machine listed too.
 *
 *     deno run -A scripts/bench/process_sampler.ts [WORKERS] [--json]
 *     bun scripts/bench/process_sampler.ts [WORKERS] [--json]
 *
 * Prints the time of a pass and what that costs of a core at the default
 * harvest_interval (5 s); with `--json`, one JSON line for `deno task bench
 * health`.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import process from "node:process";
import { ProcessSampler } from "../../src/master/process_sampler.ts";
import { linuxProc } from "../../src/master/proc.ts";

const args = process.argv.slice(2);
const json = args.includes("--json");
const workers = Number(args.find((a) => a !== "--json") ?? 64);
const PASSES = 200;
const INTERVAL_MS = 5_000;

const children: ChildProcess[] = [];
const deadline = setTimeout(() => stop(1), 120_000);
function stop(code: number): void {
  for (const c of children) if (c.pid !== undefined) process.kill(c.pid, "SIGKILL");
  clearTimeout(deadline);
  process.exit(code);
}
process.on("SIGINT", () => stop(130));

for (let i = 0; i < workers; i++) {
  children.push(spawn("sleep", ["120"], { detached: true, stdio: "ignore" }));
}
await new Promise((r) => setTimeout(r, 300));
const sampled = children.map((c, i) => ({ id: i + 1, slot: i + 1, pid: c.pid! }));
const sampler = new ProcessSampler(linuxProc());

let t = performance.now();
sampler.sample(sampled, 0);
const first = performance.now() - t;
const times: number[] = [];
for (let i = 1; i <= PASSES; i++) {
  t = performance.now();
  sampler.sample(sampled, i * INTERVAL_MS);
  times.push(performance.now() - t);
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
const mean = times.reduce((a, b) => a + b, 0) / times.length;
const measured = sampled.filter((w) => sampler.figures(w.id).memoryBytes !== null).length;
const runtime = "Deno" in globalThis ? "deno" : "bun";
if (json) {
  console.log(JSON.stringify({
    workers,
    measured,
    meanMs: mean,
    medianMs: median,
    share: mean / INTERVAL_MS,
    firstShare: first / INTERVAL_MS,
  }));
  stop(0);
}
console.log(
  `${runtime}: ${workers} workers (${measured} measured), ${
    readdirSync("/proc").length
  } /proc entries: ` +
    `first pass ${first.toFixed(2)} ms, then median ${median.toFixed(3)} ms, mean ${
      mean.toFixed(3)
    } ms, ` +
    `max ${times[times.length - 1].toFixed(2)} ms a pass = ${
      (mean / INTERVAL_MS * 100).toFixed(3)
    }% ` +
    `of a core every ${INTERVAL_MS / 1000} s (${(first / INTERVAL_MS * 100).toFixed(3)}% at worst)`,
);
stop(0);
