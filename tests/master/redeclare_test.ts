import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../_helpers/cli.ts";
import { getFresh, RUNTIMES, startWorkers, sumSamples, waitFor } from "../_helpers/master.ts";

const APP = `${ROOT}tests/fixtures/master/rebucket_app.ts`;
const COUNT = "app_job_duration_seconds_count";

test(
  "forklift run on HUP into new histogram boundaries counts every later request on them, and none is dropped",
  { skip: !RUNTIMES.bun },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "forklift-rebucket-"));
    const file = join(dir, "boundaries.json");
    writeFileSync(file, "[1]");
    try {
      const { master: m, port } = await startWorkers("bun", APP, {
        workers: 2,
        env: { REBUCKET_FILE: file },
      });
      try {
        const K = 20;
        const requests = async (body: string) => {
          for (let i = 0; i < K; i++) {
            const res = await getFresh(port, "/");
            assert.equal(res?.status, 200);
            assert.equal(res?.body, body);
          }
        };
        await requests("buckets 1");
        await waitFor(
          "the first generation's count",
          async () => sumSamples(await m.metrics(), COUNT) === K,
        );
        const before = new Set(await m.readyPids());
        writeFileSync(file, "[0.25,2]");
        m.signal("SIGHUP");
        await waitFor("two new workers, the old ones gone", async () => {
          const ws = (await m.status()).workers as Array<{ pid: number; state: string }>;
          return ws.length === 2 && ws.every((w) => w.state === "ready" && !before.has(w.pid));
        }, 20_000);
        await requests("buckets 0.25,2");
        const text = await waitFor("the new generation's count on the new boundaries", async () => {
          const text = await m.metrics();
          return /app_job_duration_seconds_bucket\{le="2"\}/.test(text) &&
              sumSamples(text, COUNT) === K
            ? text
            : undefined;
        }, 10_000);
        assert.match(text, /^app_job_duration_seconds_bucket\{le="0\.25"\} 0$/m);
        assert.match(text, new RegExp(`^app_job_duration_seconds_bucket\\{le="2"\\} ${K}$`, "m"));
        assert.doesNotMatch(text, /app_job_duration_seconds_bucket\{le="1"\}/);
        assert.match(text, /^forklift_dropped_points_total\{reason="conflict"\} 0$/m);
        assert.match(m.stderr, /Metric app\.job\.duration now declared as histogram s \[0\.25,2\]/);
        console.log(
          `HUP into new boundaries: ${K} requests after the roll, ${K} counted on the new boundaries`,
        );
      } finally {
        await m.cleanup();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
