import { test } from "node:test";
import assert from "node:assert/strict";
import { cleanEnv, ROOT } from "../_helpers/cli.ts";
import {
  alive,
  freePort,
  Master,
  peakRssMiB,
  RUNTIMES,
  serverArgv,
  sleep,
} from "../_helpers/master.ts";
import { testRuntime } from "../_helpers/runtime.ts";

const CHATTY = `${ROOT}tests/fixtures/master/chatty_app.ts`;
const runtime = testRuntime();
const GRACEFUL_S = 2;

function chattyMaster(port: number, stdout: "stall" | "closed"): Master {
  return new Master(
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
      ...serverArgv(runtime, CHATTY),
    ],
    { env: cleanEnv({ PORT: String(port) }), deadlineMs: 40_000, stdout },
  );
}

/** GETs /status with a deadline; the time it took, or throws. */
async function statusMs(m: Master): Promise<number> {
  const t0 = Date.now();
  const res = await fetch(`http://127.0.0.1:${m.metricsPort}/status`, {
    signal: AbortSignal.timeout(3_000),
  });
  await res.body?.cancel();
  return Date.now() - t0;
}

/** Watches the master for `ms`: /status answers every time and no worker is replaced. */
async function staysHealthy(m: Master, pids: number[], ms: number): Promise<number> {
  let slowest = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    slowest = Math.max(slowest, await statusMs(m));
    await sleep(250);
  }
  assert.doesNotMatch(m.stderr, /sent nothing for/, "a worker was judged silent");
  const now = (await m.waitReady(2, 5_000)).map((w) => w.pid).sort();
  assert.deepEqual(now, pids, "a worker was replaced");
  return slowest;
}

/** SIGTERM: the master must exit 0 within its graceful time and a second. */
async function stopsOnTerm(m: Master): Promise<number> {
  const t0 = Date.now();
  m.signal("SIGTERM");
  const exit = await Promise.race([m.exited, sleep((GRACEFUL_S + 2) * 1000)]);
  assert.ok(exit, `no exit ${GRACEFUL_S + 2} s after SIGTERM:\n${m.stderr.slice(-2000)}`);
  assert.equal(m.exit?.code, 0, m.stderr.slice(-2000));
  return Date.now() - t0;
}

test(
  "forklift run keeps its workers, /status and SIGTERM when no one reads its stdout",
  { skip: !RUNTIMES[runtime] },
  async () => {
    const m = chattyMaster(await freePort(), "stall");
    try {
      const pids = (await m.waitReady(2)).map((w) => w.pid).sort();
      // About 2 MB/s of worker output into a pipe nobody reads: it is full within a second.
      const slowest = await staysHealthy(m, pids, 5_000);
      // Read again: the lines dropped meanwhile are counted, once.
      m.child.stdout!.on("data", (d) => (m.stdout += d));
      m.child.stdout!.resume();
      const said = await m.waitLog(
        /Dropped (\d+) line\(s\) of output: the reader of the master's stdout did not keep up/,
        5_000,
      );
      assert.ok(Number(said[1]) > 0);
      assert.ok(m.stdout.length > 0, "nothing written once read again");
      const peak = peakRssMiB(m.pid);
      const termMs = await stopsOnTerm(m);
      console.log(
        `stalled stdout: master peak RSS ${peak.toFixed(1)} MiB, slowest /status ${slowest} ms, ${
          said[1]
        } lines dropped, SIGTERM to exit ${termMs} ms`,
      );
    } finally {
      await m.cleanup();
    }
  },
);

test(
  "forklift run keeps running when its stdout is closed",
  { skip: !RUNTIMES[runtime] },
  async () => {
    const m = chattyMaster(await freePort(), "closed");
    try {
      const pids = (await m.waitReady(2)).map((w) => w.pid).sort();
      await staysHealthy(m, pids, 3_000);
      assert.ok(alive(m.pid));
      const termMs = await stopsOnTerm(m);
      console.log(`closed stdout: master ran on, SIGTERM to exit ${termMs} ms`);
    } finally {
      await m.cleanup();
    }
  },
);
