import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";
import { ROOT } from "../_helpers/cli.ts";
import { RUNTIMES, sleep, startWorkers, waitFor } from "../_helpers/master.ts";
import { assertPromtoolAccepts, NEEDS_PROMTOOL } from "../_helpers/promtool.ts";

const APP = `${ROOT}tests/fixtures/master/burn_app.ts`;
const LINUX = process.platform === "linux";

/** `process_cpu_time_seconds_total` of `slot`, user and system together. */
function cpuSeconds(text: string, slot: number): number {
  let sum = 0;
  const re = new RegExp(
    `^process_cpu_time_seconds_total\\{cpu_mode="(?:user|system)",worker="${slot}"\\} (\\S+)$`,
    "gm",
  );
  for (const m of text.matchAll(re)) sum += Number(m[1]);
  return sum;
}

/** The resident memory of process group `pgid`, as /proc/PID/status says, in bytes. */
function groupRss(pgid: number): number {
  return [...groupMembers(pgid).values()].reduce((a, b) => a + b, 0);
}

/** The processes of group `pgid` with their resident memory in bytes. */
function groupMembers(pgid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "latin1");
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (pgrp !== pgid) continue;
      const status = readFileSync(`/proc/${name}/status`, "latin1");
      out.set(Number(name), Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0) * 1024);
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

type Worker = Record<string, unknown> & { slot: number; pid: number; cpu: number | null };

for (const runtime of ["deno", "bun"] as const) {
  describe(`process metrics of ${runtime} workers`, { skip: !RUNTIMES[runtime] || !LINUX }, () => {
    test(`ProcessSampler shows a ${runtime} worker burning half a core near 0.5 in /status and /metrics, and its memory as /proc has it`, async () => {
      const { master: m } = await startWorkers(runtime, APP, { workers: 1, harvestInterval: 0.5 });
      try {
        const first = await waitFor("a cpu figure", async () => {
          const w = (await m.status()).workers[0] as Worker;
          return typeof w.cpu === "number" ? w : undefined;
        }, 5_000);
        // The fixture's first seconds (start-up, JIT) are not half a core.
        await sleep(1_000);
        const t0 = performance.now();
        const before = cpuSeconds(await m.metrics(), 1);
        await sleep(2_500);
        const after = cpuSeconds(await m.metrics(), 1);
        const rate = (after - before) / ((performance.now() - t0) / 1000);
        assert.ok(rate > 0.3 && rate < 0.7, `rate from /metrics: ${rate}`);
        // One interval's figure moves with the machine's load: some reading within the range.
        const seen: number[] = [];
        const w = await waitFor("a cpu figure near 0.5 in /status", async () => {
          const w = (await m.status()).workers[0] as Worker;
          if (seen.at(-1) !== w.cpu) seen.push(w.cpu!);
          return w.cpu! > 0.3 && w.cpu! < 0.7 ? w : undefined;
        }, 5_000).catch((e) => {
          throw new Error(`${e.message}: ${seen}`);
        });
        assert.equal(w.pid, first.pid);
        const memory = w.memory_bytes as number;
        const proc = groupRss(w.pid);
        assert.ok(Math.abs(memory - proc) <= proc / 10, `/status ${memory}, /proc ${proc}`);
        const text = await m.metrics();
        const gauge = Number(/^process_memory_usage_bytes\{worker="1"\} (\S+)$/m.exec(text)?.[1]);
        assert.ok(Math.abs(gauge - proc) <= proc / 10, `/metrics ${gauge}, /proc ${proc}`);
        assert.match(text, /^# TYPE process_cpu_time_seconds_total counter$/m);
        assert.match(text, /^# TYPE process_memory_usage_bytes gauge$/m);
        if (!NEEDS_PROMTOOL) assertPromtoolAccepts(text);
        for (const k of ["heap_used_bytes", "loop_delay_p99_seconds", "active_requests"]) {
          assert.equal(typeof w[k], "number", `${k}: ${w[k]}`);
        }
      } finally {
        await m.cleanup();
      }
    });

    test(`ProcessSampler counts the processes a ${runtime} worker starts in its memory`, async () => {
      const { master: m } = await startWorkers(runtime, APP, {
        workers: 1,
        harvestInterval: 0.3,
        env: { BURN: "0", CHILD: "1" },
      });
      let members = new Map<number, number>();
      try {
        const [pid] = await m.readyPids();
        // The child holds its 48 MiB once it has started.
        members = await waitFor("the worker's child", () => {
          const g = groupMembers(pid);
          return [...g].some(([child, rss]) => child !== pid && rss > 40 << 20) ? g : undefined;
        }, 10_000);
        const own = members.get(pid)!;
        // The child's memory settles as it starts: the figures meet once it has.
        let last = "";
        await waitFor("the child in /status", async () => {
          const w = (await m.status()).workers[0] as Worker;
          const v = w.memory_bytes as number;
          const proc = groupRss(pid);
          last = `/status ${v}, /proc ${proc}, the worker alone ${own}`;
          return v > own + (40 << 20) && Math.abs(v - proc) <= proc / 10;
        }, 5_000).catch((e) => {
          throw new Error(`${e.message}: ${last}`);
        });
      } finally {
        await m.cleanup();
        for (const child of members.keys()) {
          try {
            process.kill(child, "SIGKILL");
          } catch {
            // Gone with its group.
          }
        }
      }
    });

    test(`ProcessSampler continues a ${runtime} slot's CPU time across a restart, never going back`, async () => {
      const { master: m } = await startWorkers(runtime, APP, { workers: 1, harvestInterval: 0.3 });
      try {
        const old = await waitFor("some cpu time", async () => {
          const v = cpuSeconds(await m.metrics(), 1);
          return v > 0.3 ? v : undefined;
        }, 5_000);
        const [pid] = await m.readyPids();
        process.kill(pid, "SIGKILL");
        await waitFor("a new worker", async () => {
          const pids = await m.readyPids();
          return pids.length === 1 && pids[0] !== pid;
        }, 10_000);
        let last = old;
        for (let i = 0; i < 10; i++) {
          const v = cpuSeconds(await m.metrics(), 1);
          assert.ok(v >= last, `went back from ${last} to ${v}`);
          last = v;
          await sleep(150);
        }
        assert.ok(last > old, `${last} after ${old}`);
      } finally {
        await m.cleanup();
      }
    });
  });
}
