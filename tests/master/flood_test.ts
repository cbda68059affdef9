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
/** The same flood from a Deno worker over its socket, where the master reads in turns. */
const SOCKET_FLOOD = `${ROOT}tests/fixtures/master/flood_app.ts`;

/**
 * A master of 2 `runtime` workers of `app`, worker 1 the flooder, silence
 * judged after 3 s: a Deno master reads a Bun worker's IPC flood in stalls of
 * up to about 2 s (Deno's own IPC reader, see docs/reliability.md), and the
 * test is that the honest worker outlives the flood, not that stall's length.
 * The Bun app loads the reporter itself and runs uninjected, on a Node IPC
 * channel; the Deno app is injected and floods the socket.
 */
function floodMaster(runtime: "bun" | "deno", app: string, env: Record<string, string>): Master {
  return new Master(
    [
      "-w",
      "2",
      "--timeout",
      "3",
      "--graceful-timeout",
      String(GRACEFUL_S),
      "--metrics-bind",
      "127.0.0.1:0",
      ...(runtime === "bun" ? ["--no-inject"] : []),
      "--",
      ...serverArgv(runtime, app),
    ],
    { env: cleanEnv(env), deadlineMs: 60_000 },
  );
}

test(
  "forklift run keeps the other worker, /status and SIGTERM answering through a 400,000-message flood from one worker",
  { skip: !RUNTIMES.bun },
  async () => {
    const port = await freePort();
    const m = floodMaster("bun", FLOOD, { PORT: String(port), FLOOD_AFTER_MS: "800" });
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

test(
  "forklift run keeps its honest Deno worker and answers /status while another floods its channel with 400,000 messages",
  { skip: !RUNTIMES.deno },
  async () => {
    const port = await freePort();
    const m = floodMaster("deno", SOCKET_FLOOD, { PORT: String(port), FLOOD_COUNT: "400000" });
    try {
      const before = await m.waitReady(2, 20_000);
      const honest = before.find((w) => w.slot === 2)!.pid;
      let answered = 0;
      while (!m.stdout.includes("flood: done")) {
        assert.ok(m.exit === undefined, `the master exited: ${m.stderr}`);
        const res = await m.get("/status").catch(() => undefined);
        if (res?.status === 200) {
          answered++;
          await res.body?.cancel();
        }
        await sleep(100);
      }
      // Past the flood, silence is judged for every worker once more (timeout 3 s).
      await sleep(4_000);
      const after = (await m.status()).workers;
      assert.equal(
        after.find((w) => w.slot === 2)?.pid,
        honest,
        `the honest worker was replaced:\n${m.stderr}`,
      );
      assert.ok(answered > 0, "/status never answered during the flood");
      const peak = peakRssMiB(m.pid);
      assert.ok(peak < 300, `the master peaked at ${peak | 0} MiB`);
      console.log(
        `flood: /status answered ${answered} times during it; master peak RSS ${peak | 0} MiB`,
      );
    } finally {
      await m.cleanup();
    }
  },
);
