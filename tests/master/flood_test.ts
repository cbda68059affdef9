import { test } from "node:test";
import assert from "node:assert/strict";
import { cleanEnv, ROOT } from "../_helpers/cli.ts";
import {
  freePort,
  Master,
  peakRssMiB,
  RUNTIMES,
  serverArgv,
  sleep,
  waitFor,
} from "../_helpers/master.ts";

const FLOOD = `${ROOT}tests/fixtures/master/ipc_flood_app.ts`;
const GRACEFUL_S = 3;
/**
 * The master's memory ceiling under this flood (docs/reliability.md): a Bun
 * master holds it in under 100 MiB; on a Deno master, Deno's own Node IPC
 * reader takes most of it (408 to 892 MiB measured).
 */
const FLOOD_CEILING_MIB = 1536;

test(
  "Arbiter keeps the other worker, /status and SIGTERM answering through a 400,000-message flood from one worker",
  { skip: !RUNTIMES.bun },
  async () => {
    const port = await freePort();
    const m = new Master(
      [
        "-w",
        "2",
        "--timeout",
        "2",
        "--graceful-timeout",
        String(GRACEFUL_S),
        "--metrics-bind",
        "127.0.0.1:0",
        "--",
        ...serverArgv("bun", FLOOD),
      ],
      { env: cleanEnv({ PORT: String(port), FLOOD_AFTER_MS: "800" }), deadlineMs: 55_000 },
    );
    try {
      const before = await m.waitReady(2);
      const honest = before.find((w) => w.slot === 2)!.pid;
      await waitFor("the flood", () => m.stdout.includes("flood: round 1 sent"), 20_000);
      // While the floods go on, /status answers and no one is judged silent.
      const slowest = { ms: 0 };
      const end = Date.now() + 5_000;
      while (Date.now() < end) {
        const t0 = Date.now();
        const res = await fetch(`http://127.0.0.1:${m.metricsPort}/status`, {
          signal: AbortSignal.timeout(10_000),
        });
        await res.body?.cancel();
        slowest.ms = Math.max(slowest.ms, Date.now() - t0);
        await sleep(200);
      }
      assert.doesNotMatch(m.stderr, /sent nothing for/, "a worker was judged silent");
      const after = await m.waitReady(2, 5_000);
      assert.equal(after.find((w) => w.slot === 2)!.pid, honest, "the honest worker was replaced");
      assert.match(m.stdout, /flood: round 3 sent/, "the flood did not go on");
      const peak = peakRssMiB(m.pid);
      assert.ok(peak < FLOOD_CEILING_MIB, `the master peaked at ${peak | 0} MiB`);
      const t0 = Date.now();
      m.signal("SIGTERM");
      const exit = await Promise.race([m.exited, sleep((GRACEFUL_S + 2) * 1000)]);
      assert.ok(exit, `no exit ${GRACEFUL_S + 2} s after SIGTERM`);
      assert.equal(m.exit?.code, 0, m.stderr);
      const rounds = m.stdout.match(/flood: round \d+ sent/g)?.length;
      console.log(
        `flood: ${rounds} rounds of 400,000, master peak RSS ${
          peak.toFixed(1)
        } MiB, slowest /status ${slowest.ms} ms, SIGTERM to exit ${Date.now() - t0} ms`,
      );
    } finally {
      await m.cleanup();
    }
  },
);
