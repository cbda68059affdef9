import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import process from "node:process";
import { cleanEnv, ROOT } from "../_helpers/cli.ts";
import {
  alive,
  freePort,
  Master,
  RUNTIMES,
  serverArgv,
  sleep,
  waitFor,
} from "../_helpers/master.ts";
import { testRuntime } from "../_helpers/runtime.ts";

const APP = `${ROOT}tests/fixtures/master/app.ts`;
const STUBBORN = `${ROOT}tests/fixtures/master/stubborn_app.ts`;
const runtime = testRuntime();

/** Live processes whose environment names `master` as their master (its workers, and theirs). */
function startedBy(master: number): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const env = readFileSync(`/proc/${name}/environ`, "latin1").split("\0");
      if (env.includes(`FORKLIFT_MASTER_PID=${master}`) && alive(Number(name))) {
        pids.push(Number(name));
      }
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return pids;
}

/** Whether a plain listener can take `port` on 127.0.0.1 (no worker holds it). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** Kills whatever a test's master left, by pid. */
function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

/** Starts a master on `app`; resolves once its first worker exists, with that worker's pid. */
async function firstWorker(m: Master): Promise<number> {
  const [pid] = await waitFor(
    "a worker process",
    () => {
      if (m.exit) throw new Error(`master exited: ${m.stderr}`);
      const ws = startedBy(m.pid);
      return ws.length > 0 ? ws : undefined;
    },
    15_000,
    2,
  );
  return pid;
}

test(
  "forklift run's workers die with a master SIGKILLed in its first moments, before any is ready",
  { skip: !RUNTIMES[runtime] },
  async () => {
    // The kill lands as the first worker appears (a spawn may be under way),
    // or 100 or 250 ms after the master started.
    for (const when of ["first worker", "first worker", "first worker", "100 ms", "250 ms"]) {
      const port = await freePort();
      const m = new Master(
        ["-w", "2", "--metrics-bind", "off", "--", ...serverArgv(runtime, APP)],
        { env: cleanEnv({ PORT: String(port) }), deadlineMs: 30_000 },
      );
      const seen = new Set<number>();
      try {
        if (when === "first worker") seen.add(await firstWorker(m));
        else await sleep(Number.parseInt(when));
        m.signal("SIGKILL");
        await m.exited;
        for (const pid of startedBy(m.pid)) seen.add(pid);
        await waitFor(
          `no worker left (${when})`,
          () => startedBy(m.pid).length === 0,
          4_000,
        ).catch((e) => {
          const left = startedBy(m.pid).map((p) => readFileSync(`/proc/${p}/stat`, "utf8"));
          throw new Error(`${e.message}: ${left.join("; ")}`);
        });
        assert.ok(await portFree(port), `port ${port} still served (${when})`);
        console.log(`master killed at ${when}: ${seen.size} worker(s) seen, none left`);
      } finally {
        await m.cleanup();
        killAll([...seen, ...startedBy(m.pid)]);
      }
    }
  },
);

test(
  "forklift run's --no-inject worker that is not ready yet dies within seconds of its master's SIGKILL",
  { skip: !RUNTIMES[runtime] },
  async () => {
    const port = await freePort();
    const m = new Master(
      ["-w", "1", "--no-inject", "--metrics-bind", "off", "--", ...serverArgv(runtime, STUBBORN)],
      { env: cleanEnv({ PORT: String(port) }), deadlineMs: 30_000 },
    );
    let worker = 0;
    try {
      worker = await firstWorker(m);
      // Long before the master takes it as booted (1 s), let alone ready.
      await sleep(200);
      assert.ok(alive(worker));
      m.signal("SIGKILL");
      await m.exited;
      await waitFor("the --no-inject worker gone", () => !alive(worker), 4_000);
      assert.ok(await waitFor("its port free", () => portFree(port), 2_000));
    } finally {
      await m.cleanup();
      killAll([worker, ...startedBy(m.pid)].filter((p) => p > 0));
    }
  },
);
