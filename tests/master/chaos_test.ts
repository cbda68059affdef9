/**
 * Chaos under load: bounded client loops on loopback, a new connection per
 * request and connections kept alive, while workers are
 * SIGKILLed at random and the master gets HUP, TTIN and TTOU. The master must
 * never die, the pool must come back to N, nothing may run after the stop,
 * and the requests lost to the count must stay within what killed workers
 * served since their last harvest. `FORKLIFT_CHAOS_SECONDS` makes it longer.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { cleanEnv, ROOT } from "../_helpers/cli.ts";
import {
  alive,
  freePort,
  Load,
  Master,
  RUNTIMES,
  serverArgv,
  sleep,
  sumSamples,
  waitFor,
} from "../_helpers/master.ts";
import { KeepAliveLoad } from "../_helpers/keepalive_load.ts";

const APP = `${ROOT}tests/fixtures/master/app.ts`;
const COUNT = "http_server_request_duration_seconds_count";
const SECONDS = Number(process.env.FORKLIFT_CHAOS_SECONDS ?? 6);
const HARVEST_S = 0.3;
const N = 3;

test(
  `forklift run under chaos and load for ${SECONDS} s: never dies, returns to N, loses at most what killed workers had not harvested`,
  { skip: !RUNTIMES.bun },
  async () => {
    const port = await freePort();
    const m = new Master(
      [
        "-w",
        String(N),
        "--harvest-interval",
        String(HARVEST_S),
        "--graceful-timeout",
        "3",
        "--metrics-bind",
        "127.0.0.1:0",
        "--",
        ...serverArgv("bun", APP),
      ],
      { env: cleanEnv({ PORT: String(port) }), deadlineMs: (SECONDS + 60) * 1000 },
    );
    const seed = Date.now() % 100_000;
    let state = seed;
    const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const actions: Record<string, number> = { kill: 0, HUP: 0, TTIN: 0, TTOU: 0 };
    let load: Load | undefined;
    let kept: KeepAliveLoad | undefined;
    try {
      await m.waitReady(N);
      load = new Load(port, { concurrency: 4, pauseMs: 2, deadlineMs: (SECONDS + 10) * 1000 });
      // Clients as proxies and browsers are: connections kept alive across requests.
      kept = new KeepAliveLoad(port, {
        connections: 4,
        pauseMs: 2,
        deadlineMs: (SECONDS + 10) * 1000,
      });
      const t0 = Date.now();
      while (Date.now() - t0 < SECONDS * 1000) {
        await sleep(250 + random() * 300);
        const pick = random();
        // Slots now (a HUP also resets the count to the configured N).
        const workers = new Set((await m.status()).workers.map((w) => w.slot)).size;
        if (pick < 0.5) {
          const ws = (await m.status()).workers.filter((w) => w.state === "ready");
          const victim = ws[Math.floor(random() * ws.length)]?.pid as number | undefined;
          if (victim !== undefined && alive(victim)) {
            process.kill(victim, "SIGKILL");
            actions.kill++;
          }
        } else if (pick < 0.65) {
          m.signal("SIGHUP");
          actions.HUP++;
        } else if (pick < 0.82 && workers < N + 2) {
          m.signal("SIGTTIN");
          actions.TTIN++;
        } else if (workers > 1) {
          m.signal("SIGTTOU");
          actions.TTOU++;
        }
      }
      // Back to N: a reload takes the configured count. (After a pause: two
      // pending signals are delivered in signal-number order, HUP first.)
      await sleep(500);
      m.signal("SIGHUP");
      await sleep(300);
      await load.stop();
      await kept!.stop();
      assert.ok(alive(m.pid), "the master died");
      await m.waitReady(N, 30_000).catch(async (e) => {
        const ws = (await m.status()).workers.map((w) => `${w.slot}.${w.generation}:${w.state}`);
        throw new Error(
          `${(e as Error).message}; workers ${ws.join(" ")}; ${JSON.stringify(actions)}\n${
            m.stderr.slice(-3000)
          }`,
        );
      });
      // One harvest interval and a bit more for the last harvests to come in.
      await sleep(HARVEST_S * 1000 * 3);
      const counted = sumSamples(await m.metrics(), COUNT);
      const served = load.ok + kept!.ok;
      const lost = served - counted;
      // What one worker serves in one harvest interval, at the measured rate, twice over.
      const perWorkerInterval = Math.ceil((served / SECONDS / N) * HARVEST_S * 2) + 5;
      const bound = actions.kill * perWorkerInterval;
      console.log(
        `chaos (seed ${seed}, ${SECONDS} s): ${JSON.stringify(actions)}; served ${load.ok} + ${
          kept!.ok
        } kept alive, failed ${load.failed} ${JSON.stringify([...load.errors])} + ${kept!.failed} ${
          JSON.stringify([...kept!.errors])
        }; counted ${counted}; lost ${lost}, bound ${bound}`,
      );
      assert.ok(
        counted <= served,
        `counted ${counted} of ${served} served: a request counted twice`,
      );
      assert.ok(lost <= bound, `lost ${lost} requests, more than the bound ${bound}`);
      const pids = [...m.workerPids];
      m.signal("SIGTERM");
      assert.equal((await m.exited).code, 0, m.stderr);
      await waitFor("every worker gone", () => pids.every((p) => !alive(p)), 5_000);
    } finally {
      await load?.stop();
      await kept?.stop();
      await m.cleanup();
    }
  },
);
