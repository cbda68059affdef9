import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ROOT } from "../_helpers/cli.ts";
import { getFresh, RUNTIMES, startWorkers, sumSamples, waitFor } from "../_helpers/master.ts";

const APP = `${ROOT}tests/fixtures/master/stats_app.ts`;

for (const runtime of ["deno", "bun"] as const) {
  describe(`fork safety with ${runtime} workers`, { skip: !RUNTIMES[runtime] }, () => {
    test(`forklift run's reporter arms one timer per ${runtime} worker, none in the master, and loses nothing recorded at import`, async () => {
      const { master: m, port } = await startWorkers(runtime, APP);
      try {
        const stats = new Map<number, Record<string, unknown>>();
        await waitFor(
          "both workers' stats",
          async () => {
            const r = await getFresh(port, "/stats");
            if (r?.status === 200) {
              const s = JSON.parse(r.body);
              stats.set(s.pid, s);
            }
            return stats.size === 2;
          },
          10_000,
          0,
        );
        for (const [pid, s] of stats) {
          assert.equal(s.handshake, "welcomed", `worker ${pid}`);
          assert.equal(s.timersArmed, 1, `worker ${pid} armed ${s.timersArmed} timers`);
          assert.equal(s.timersActive, 1, `worker ${pid}`);
          assert.equal(s.postForkRuns, 1, `worker ${pid}`);
          assert.equal(s.postForkCalls, 1, `worker ${pid}`);
          assert.equal(s.periodMs, 300, `worker ${pid} runs on the master's interval`);
        }
        assert.deepEqual(new Set([...stats.values()].map((s) => s.worker)), new Set([1, 2]));
        const status = await m.status();
        assert.equal(status.master_timers_armed, 0);
        await waitFor(
          "import-time records",
          async () => sumSamples(await m.metrics(), "app_import_records_total") === 2,
          3_000,
        );
      } finally {
        await m.cleanup();
      }
    });
  });
}
