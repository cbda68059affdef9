/**
 * `respawn`: from SIGKILL of one of two workers until its replacement answers
 * (new connections poll the shared port until a pid not seen before answers),
 * against the bare runtime's start-up to its first answer, rounds alternating.
 *
 * Every round starts a fresh master: forklift delays the respawn of a slot
 * that crashes again within 10 s (exponential backoff), and a first crash is
 * what this measures. Target: at most bare start-up + 20 ms (medians).
 *
 * @module
 */
import { bareStartMs } from "./_bare.ts";
import type { Bench, BenchContext } from "./_context.ts";
import { allAnswering, withMaster } from "./_forklift.ts";
import { pollUntil } from "./_http.ts";
import { signal, sleep, track } from "./_process.ts";
import type { Row } from "./_report.ts";
import type { RuntimeName } from "./_runtimes.ts";
import { fmt, median } from "./_stats.ts";

const TARGET_MS = 20;

/** One SIGKILL-to-replacement time in ms. */
async function respawnMs(ctx: BenchContext, runtime: RuntimeName): Promise<number> {
  return await withMaster(ctx, { runtime, workers: 2 }, async (m) => {
    const { pids } = await allAnswering(m, 2);
    // Let the handshakes and first messages settle, as in a server that has been up a while.
    await sleep(300);
    const t0 = performance.now();
    signal(pids[0], "SIGKILL");
    const hit = await pollUntil(m.port, (pid) => !pids.includes(pid), t0 + 20_000, m.proc.done);
    if (hit === undefined) throw new Error("no replacement answered within 20 s");
    track(hit.pid);
    return hit.at - t0;
  });
}

/** The `respawn` benchmark. */
export const respawn: Bench = {
  name: "respawn",
  summary: "SIGKILL of a worker to its replacement answering vs bare runtime start-up",
  async run(ctx) {
    const rows: Row[] = [];
    const rounds = ctx.quick ? 3 : 11;
    for (const runtime of ["deno", "bun"] as const) {
      ctx.log(`respawn: ${runtime}, ${rounds} rounds`);
      await bareStartMs(ctx, runtime);
      const bare: number[] = [];
      const fk: number[] = [];
      for (let r = 0; r < rounds; r++) {
        if (r % 2 === 0) {
          bare.push(await bareStartMs(ctx, runtime));
          fk.push(await respawnMs(ctx, runtime));
        } else {
          fk.push(await respawnMs(ctx, runtime));
          bare.push(await bareStartMs(ctx, runtime));
        }
      }
      const b = median(bare);
      const f = median(fk);
      rows.push({
        bench: "respawn",
        metric: `SIGKILL to replacement answering, ${runtime}`,
        forklift: `${fmt(f)} ms`,
        anchor: `bare ${runtime} start ${fmt(b)} ms`,
        versus: `${f - b >= 0 ? "+" : ""}${fmt(f - b)} ms`,
        target: `≤ +${TARGET_MS} ms`,
        pass: f - b <= TARGET_MS,
      });
    }
    return rows;
  },
};
