import { test } from "node:test";
import assert from "node:assert/strict";
import { ROOT } from "../_helpers/cli.ts";
import { RUNTIMES, sleep, startWorkers, sumSamples, waitFor } from "../_helpers/master.ts";

const APP = `${ROOT}tests/fixtures/master/parallel_app.ts`;
const COUNT = "http_server_request_duration_seconds_count";

async function get(port: number, path = "/"): Promise<{ pid: number; isolate: string } | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      headers: { connection: "close" },
      signal: AbortSignal.timeout(5_000),
    });
    return await res.json();
  } catch {
    return null;
  }
}

test(
  "forklift run supervises deno serve --parallel workers: every isolate reports, counts stay exact through a roll",
  { skip: !RUNTIMES.deno },
  async () => {
    const { master: m, port } = await startWorkers("deno", APP, {
      env: { DENO_JOBS: "2" },
      command: (port) => [RUNTIMES.deno!, "serve", "--parallel", "--port", String(port), APP],
    });
    try {
      const isolates = new Set<string>();
      const pids = new Set<number>();
      let answered = 0;
      for (let i = 0; i < 60; i++) {
        const r = await get(port);
        if (r === null) continue;
        answered++;
        pids.add(r.pid);
        isolates.add(`${r.pid}/${r.isolate}`);
      }
      assert.equal(answered, 60);
      assert.equal(pids.size, 2, "both workers answered");
      assert.ok(isolates.size >= 3, `isolates that answered: ${[...isolates]}`);
      await waitFor("every request counted", async () => {
        return sumSamples(await m.metrics(), COUNT) === answered;
      }, 10_000);
      const before = (await m.readyPids()).sort();
      m.signal("SIGHUP");
      let during = 0;
      const load = (async () => {
        for (let i = 0; i < 150; i++) if ((await get(port)) !== null) during++;
      })();
      await waitFor("both workers replaced", async () => {
        const now = await m.readyPids();
        return now.length === 2 && now.every((p) => !before.includes(p));
      }, 20_000);
      await load;
      // A retired isolate's last harvest comes with its bye: nothing it answered is lost.
      await waitFor("the roll counted exactly", async () => {
        return sumSamples(await m.metrics(), COUNT) === answered + during;
      }, 10_000);
      const slow = get(port, "/slow");
      await sleep(100);
      m.signal("SIGTERM");
      assert.notEqual(await slow, null, "TERM cut a request in flight");
      const exit = await m.exited;
      assert.equal(exit.code, 0, m.stderr);
      console.log(
        `deno serve --parallel, -w 2 × 2 isolates: ${isolates.size} isolates answered; ${
          answered + during
        } requests, all counted, through a roll`,
      );
    } finally {
      await m.cleanup();
    }
  },
);
