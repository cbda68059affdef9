/**
 * `startup`: from spawning `dist/forklift run -w 2 -- <runtime> fixture` until
 * both workers answer HTTP, against the bare runtime serving the same fixture
 * until its first answer, rounds alternating between the two.
 *
 * "Both answer" is observed from outside: new connections poll the shared
 * port until two distinct pids (the fixture's body) have answered. It needs
 * nothing from forklift's own account of readiness, and it is what a client
 * sees. Target: forklift at most bare + 15 ms (medians).
 *
 * Informational anchors sit beside it: forklift with `--no-inject`, two bare
 * servers started by hand, and two started by a minimal compiled supervisor
 * that does nothing else (`fixtures/supervisor.ts`), the floor for any master
 * shipped as forklift is, with and without an empty preload in its workers
 * (`fixtures/empty_preload.js`), the floor for any master that injects code.
 * A last row gives the CPU time forklift's master and workers, and the
 * injecting floor's, had used when both answered (Linux's schedstat). Two
 * more time the binary alone (`forklift version`, spawn to exit) beside each
 * runtime running an empty script, with the binary's size.
 *
 * @module
 */
import { statSync } from "node:fs";
import { barePairMs, bareStartMs, minimalSupervisor, supervisorPairMs } from "./_bare.ts";
import type { Bench, BenchContext } from "./_context.ts";
import { allAnswering, withMaster } from "./_forklift.ts";
import { pollUntil } from "./_http.ts";
import { start, type TreeCpu, treeCpuMs } from "./_process.ts";
import type { Row } from "./_report.ts";
import type { RuntimeName } from "./_runtimes.ts";
import { fmt, median } from "./_stats.ts";

const TARGET_MS = 15;

/** `+12.3 ms` / `−4.5 ms`. */
function signedMs(x: number): string {
  return `${x >= 0 ? "+" : "−"}${fmt(Math.abs(x))} ms`;
}

/**
 * One forklift start: ms to the first answer and to both workers answering,
 * and the CPU time the master and its workers had used by then.
 */
async function forkliftStart(
  ctx: BenchContext,
  runtime: RuntimeName,
  inject = true,
): Promise<{ firstMs: number; allMs: number; cpu: TreeCpu }> {
  return await withMaster(ctx, { runtime, workers: 2, inject }, async (m) => {
    const first = await pollUntil(m.port, () => true, m.spawnedAt + 20_000, m.proc.done);
    if (first === undefined) throw new Error(`forklift did not answer:\n${m.proc.output()}`);
    const all = await allAnswering(m, 2);
    const cpu = treeCpuMs(m.proc.pid);
    return { firstMs: first.at - m.spawnedAt, allMs: all.at - m.spawnedAt, cpu };
  });
}

/** Milliseconds from spawning `argv` until it exits (0 expected). */
async function runMs(argv: string[]): Promise<number> {
  const t0 = performance.now();
  const p = start(argv, { deadlineMs: 20_000 });
  const code = await p.exited;
  if (code !== 0) throw new Error(`${argv.join(" ")} exited with ${code}:\n${p.output()}`);
  return performance.now() - t0;
}

/** The binary's own start, `forklift version`, against each runtime's empty script. */
async function binaryRows(ctx: BenchContext, rounds: number): Promise<Row[]> {
  const empty = `${ctx.root}scripts/bench/fixtures/empty_preload.js`;
  const argvs = {
    forklift: [ctx.forklift, "version"],
    deno: [ctx.runtimes.deno, "run", empty],
    bun: [ctx.runtimes.bun, empty],
  };
  const times: Record<keyof typeof argvs, number[]> = { forklift: [], deno: [], bun: [] };
  for (const argv of Object.values(argvs)) await runMs(argv);
  for (let r = 0; r < rounds; r++) {
    const order = Object.keys(argvs) as Array<keyof typeof argvs>;
    if (r % 2 === 1) order.reverse();
    for (const k of order) times[k].push(await runMs(argvs[k]));
  }
  const mib = statSync(ctx.forklift).size / 2 ** 20;
  const f = median(times.forklift);
  return (["bun", "deno"] as const).map((runtime) => ({
    bench: "startup",
    metric: `the binary alone (${fmt(mib)} MiB): forklift version, spawn to exit, ` +
      `against ${runtime} running an empty script`,
    forklift: `${fmt(f)} ms`,
    anchor: `${runtime} ${fmt(median(times[runtime]))} ms`,
    versus: signedMs(f - median(times[runtime])),
    target: "(info)",
    pass: null,
  }));
}

/** The `startup` benchmark. */
export const startup: Bench = {
  name: "startup",
  summary: "spawn to both workers answering (-w 2, binary) vs a bare runtime's first answer",
  async run(ctx) {
    const rows: Row[] = [];
    const rounds = ctx.quick ? 5 : 21;
    const supervisor = minimalSupervisor(ctx);
    for (const runtime of ["deno", "bun"] as const) {
      ctx.log(`startup: ${runtime}, ${rounds} rounds`);
      // Warm the runtime's module cache and the binary's preload file.
      await bareStartMs(ctx, runtime);
      await forkliftStart(ctx, runtime);
      const bare: number[] = [];
      const pair: number[] = [];
      const floor: number[] = [];
      const floorPreload: number[] = [];
      const noInject: number[] = [];
      const first: number[] = [];
      const all: number[] = [];
      const cpu: TreeCpu[] = [];
      const floorCpu: TreeCpu[] = [];
      for (let r = 0; r < rounds; r++) {
        // Alternate which goes first, so neither always follows the other's teardown.
        const order = ["bare", "pair", "floor", "floor-preload", "no-inject", "forklift"];
        if (r % 2 === 1) order.reverse();
        for (const which of order) {
          if (which === "bare") bare.push(await bareStartMs(ctx, runtime));
          else if (which === "pair") pair.push(await barePairMs(ctx, runtime));
          else if (which === "floor") {
            floor.push((await supervisorPairMs(ctx, runtime, supervisor)).ms);
          } else if (which === "floor-preload") {
            const s = await supervisorPairMs(ctx, runtime, supervisor, true);
            floorPreload.push(s.ms);
            floorCpu.push(s.cpu);
          } else if (which === "no-inject") {
            noInject.push((await forkliftStart(ctx, runtime, false)).allMs);
          } else {
            const f = await forkliftStart(ctx, runtime);
            first.push(f.firstMs);
            all.push(f.allMs);
            cpu.push(f.cpu);
          }
        }
      }
      const b = median(bare);
      const f = median(all);
      rows.push({
        bench: "startup",
        metric: `start to 2 workers answering, ${runtime} (first worker: ${fmt(median(first))} ms)`,
        forklift: `${fmt(f)} ms`,
        anchor: `bare ${runtime} ${fmt(b)} ms`,
        versus: signedMs(f - b),
        target: `≤ +${TARGET_MS} ms`,
        pass: f - b <= TARGET_MS,
      });
      // Informational rows: forklift against another way of starting two servers.
      const info = (against: string, name: string, ms: number) =>
        rows.push({
          bench: "startup",
          metric: `start to 2 workers answering, ${runtime}, ${against}`,
          forklift: `${fmt(f)} ms`,
          anchor: `${name} ${fmt(ms)} ms`,
          versus: signedMs(f - ms),
          target: "(info)",
          pass: null,
        });
      info("against two bare servers started by hand", "bare pair", median(pair));
      info(
        "forklift --no-inject (no reporter; the workers get a Node IPC channel instead of the socket)",
        "--no-inject",
        median(noInject),
      );
      const s = median(floor);
      info(
        "against a minimal compiled supervisor " +
          `(spawns two workers, nothing else; bare + ${fmt(s - b)} ms)`,
        "minimal supervisor",
        s,
      );
      const p = median(floorPreload);
      info(
        "against the minimal supervisor whose workers load an empty preload " +
          `(the floor of any injecting supervisor; bare + ${fmt(p - b)} ms)`,
        "minimal supervisor + empty preload",
        p,
      );
      // Two cores: every millisecond any process spends before both answer
      // delays that moment by about half of one.
      const own = median(cpu.map((c) => c.own));
      const kids = median(cpu.map((c) => c.children));
      const floorOwn = median(floorCpu.map((c) => c.own));
      const floorKids = median(floorCpu.map((c) => c.children));
      rows.push({
        bench: "startup",
        metric:
          `CPU time from start until both answer, ${runtime}: supervisor + its two workers, ` +
          "all threads (forklift against the minimal supervisor with an empty preload)",
        forklift: `${fmt(own)} + ${fmt(kids)} ms`,
        anchor: `floor ${fmt(floorOwn)} + ${fmt(floorKids)} ms`,
        versus: signedMs(own + kids - floorOwn - floorKids),
        target: "(info)",
        pass: null,
      });
    }
    rows.push(...await binaryRows(ctx, rounds));
    return rows;
  },
};
