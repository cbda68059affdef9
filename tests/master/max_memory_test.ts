import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { cleanEnv, ROOT, runtimeArgv } from "../_helpers/cli.ts";
import { inNetns, NETNS, RUNTIMES } from "../_helpers/master.ts";
import { HEADROOM_MIB, type MemoryRollResult, WORKERS } from "../_helpers/memory_roll.ts";

const DRIVER = `${ROOT}tests/_helpers/memory_roll.ts`;

/** Runs the driver in a namespace of its own with `tcp_migrate_req` at 1. */
async function rollInNetns(runtime: "deno" | "bun"): Promise<MemoryRollResult> {
  const env = cleanEnv({ FORKLIFT_MEMORY_ROLL: runtime });
  for (const [k, v] of Object.entries(RUNTIMES)) {
    if (v !== undefined) env[`FORKLIFT_TEST_${k.toUpperCase()}`] = v;
  }
  const r = await inNetns(1, runtimeArgv(DRIVER), { env, timeoutMs: 45_000 });
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`the run printed no result (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

for (const runtime of ["deno", "bun"] as const) {
  describe(`max_memory with ${runtime} workers`, {
    skip: !RUNTIMES[runtime] ? `no ${runtime}` : !NETNS ? "no network namespace (root)" : false,
  }, () => {
    test(`forklift run --max-memory rolls each leaking ${runtime} worker once under keep-alive load, losing no request`, async () => {
      const r = await rollInNetns(runtime);
      console.log(
        `max_memory | ${runtime} | bare app ${r.baselineMiB} MiB, limit ${r.limitMiB} MiB | ${r.ok} ok | ${r.failed} failed ${
          JSON.stringify(r.errors)
        } | restarts ${JSON.stringify(r.restarts)} | rolled at ${
          r.rolledLines.map((l) => /uses ([\d.]+) MiB/.exec(l)?.[1]).join(", ")
        } MiB | ${r.heldLines} held`,
      );
      assert.equal(r.migrateReq, 1, "the namespace's own setting");
      assert.equal(r.failed, 0, JSON.stringify(r.errors));
      assert.ok(r.ok > 200, `too little load to judge: ${JSON.stringify(r)}`);
      // Each first worker rolled once, for memory and for nothing else.
      assert.deepEqual(r.restarts, {
        crash: 0,
        timeout: 0,
        reload: 0,
        max_requests: 0,
        memory: WORKERS,
        scale: 0,
      });
      assert.ok(r.after.every((pid) => !r.before.includes(pid)), JSON.stringify(r));
      // Logged with the figure and the limit.
      assert.equal(r.rolledLines.length, WORKERS, r.rolledLines.join("\n"));
      for (const line of r.rolledLines) {
        const m = /Worker \d uses ([\d.]+) MiB, over max_memory (\d+) MiB: rolling it/.exec(line);
        assert.ok(m, line);
        assert.equal(Number(m[2]), r.limitMiB);
        assert.ok(Number(m[1]) > r.limitMiB && Number(m[1]) < r.limitMiB + 2 * HEADROOM_MIB, line);
      }
      // The replacements leak past the limit at once: held, not rolled in a loop.
      assert.ok(r.heldLines >= 1, JSON.stringify(r));
    });
  });
}
