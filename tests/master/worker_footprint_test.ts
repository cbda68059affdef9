import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ROOT } from "../_helpers/cli.ts";
import {
  getFresh,
  RUNTIMES,
  sleep,
  startWorkers,
  sumSamples,
  waitFor,
} from "../_helpers/master.ts";

const TRAPS = `${ROOT}tests/fixtures/deno_lazy_traps.ts`;
const COUNT = "http_server_request_duration_seconds_count";

/** The fixture's `lazy-trap PID WHAT` lines of one worker, in order, with its `slow-done PID`. */
function linesOf(log: string, pid: number): string[] {
  return log.split("\n").filter((l) =>
    l.startsWith(`lazy-trap ${pid} `) || l.trim() === `slow-done ${pid}`
  );
}

// On Deno a process's first touch of `process` starts the Node layer (about
// 3.3 MiB of private memory) and its first setTimeout the timers (about 1.7
// MiB): an injected worker must touch neither while it serves and drains.
describe("forklift run's Deno worker footprint", { skip: !RUNTIMES.deno }, () => {
  test("forklift run's Deno workers start neither Deno's Node layer nor its timers while they serve, harvest and drain", async () => {
    const { master: m, port } = await startWorkers("deno", TRAPS, { workers: 1 });
    try {
      const [old] = await m.readyPids();
      for (let i = 0; i < 20; i++) assert.equal((await getFresh(port, "/"))?.status, 200);
      // Several harvests, heartbeats and runtime samples.
      await waitFor("harvested", async () => sumSamples(await m.metrics(), COUNT) >= 20, 5_000);
      await sleep(1_000);
      const slow = getFresh(port, "/slow", 10_000);
      await sleep(200);
      m.signal("SIGHUP");
      assert.equal((await slow)?.body, "slow", "the request in flight finished");
      await m.waitLog(new RegExp(`\\(pid ${old}\\) exited`), 15_000);
      const lines = linesOf(m.stderr, old);
      const done = lines.indexOf(`slow-done ${old}`);
      assert.ok(done >= 0, `the drained worker's slow request did not finish:\n${m.stderr}`);
      // After its last request, the worker's farewell may wait with a timer: it exits next.
      assert.deepEqual(lines.slice(0, done), [], "touched while serving or draining");
      assert.deepEqual(
        lines.filter((l) => / process: /.test(l)),
        [],
        "Deno's Node layer started",
      );
    } finally {
      await m.cleanup();
    }
  });
});
