import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { cleanEnv, ROOT } from "../_helpers/cli.ts";
import {
  alive,
  freePort,
  getFresh,
  Load,
  Master,
  readMigrateReq,
  RUNTIMES,
  serverArgv,
  sleep,
  sumSamples,
  waitFor,
} from "../_helpers/master.ts";

const APP = `${ROOT}tests/fixtures/master/app.ts`;
const HOOKS = `${ROOT}tests/fixtures/master/hooks.ts`;
const COUNT = "http_server_request_duration_seconds_count";
const HARVEST_S = 0.5;

type Runtime = "deno" | "bun";
type WorkerDoc = Record<string, unknown> & { slot: number; pid: number; state: string };

/** Starts a master over the app fixture on a fresh shared port. */
async function start(
  runtime: Runtime,
  flags: string[],
  env: Record<string, string> = {},
  app = APP,
): Promise<{ m: Master; port: number }> {
  const port = await freePort();
  const m = new Master(
    [
      "--harvest-interval",
      String(HARVEST_S),
      "--graceful-timeout",
      "3",
      "--metrics-bind",
      "127.0.0.1:0",
      ...flags,
      "--",
      ...serverArgv(runtime, app),
    ],
    { env: cleanEnv({ PORT: String(port), ...env }), deadlineMs: 45_000 },
  );
  return { m, port };
}

async function workers(m: Master): Promise<WorkerDoc[]> {
  return (await m.status()).workers as WorkerDoc[];
}

/** Waits until exactly the given slots hold ready workers and nothing else runs. */
function settled(m: Master, slots: number, timeoutMs = 15_000): Promise<WorkerDoc[]> {
  return m.waitReady(slots, timeoutMs);
}

function restarts(text: string, reason: string): number {
  const m = new RegExp(`^forklift_worker_restarts_total\\{reason="${reason}"\\} (\\d+)$`, "m")
    .exec(text);
  return m ? Number(m[1]) : NaN;
}

/** Waits until /metrics counts `n` requests, then checks it is exactly `n`. */
async function assertCount(m: Master, n: number, what: string): Promise<void> {
  let last = NaN;
  try {
    await waitFor(
      `count ${n}`,
      async () => (last = sumSamples(await m.metrics(), COUNT)) === n,
      3_000,
    );
  } catch {
    // Reported below with the figure seen.
  }
  // One more harvest interval: a late duplicate would show up now.
  await sleep(HARVEST_S * 1000 + 200);
  last = sumSamples(await m.metrics(), COUNT);
  assert.equal(last, n, `${what}: /metrics counts ${last}, clients saw ${n}`);
}

for (const runtime of ["deno", "bun"] as const) {
  describe(`forklift run supervising ${runtime} workers`, { skip: !RUNTIMES[runtime] }, () => {
    test(`forklift run on HUP rolls every ${runtime} worker, losing no request the accept queue did not hold`, async () => {
      {
        // The host's setting, read only: tests/master/drain_test.ts sets both
        // values in namespaces of its own.
        const migrateReq = readMigrateReq();
        const { m, port } = await start(runtime, ["-w", "2"]);
        let load: Load | undefined;
        try {
          await settled(m, 2);
          load = new Load(port, { concurrency: 3, pauseMs: 5, deadlineMs: 30_000 });
          await sleep(300);
          const seen = new Set<number>();
          for (let round = 1; round <= 3; round++) {
            const before = (await settled(m, 2)).map((w) => w.pid);
            before.forEach((p) => seen.add(p));
            m.signal("SIGHUP");
            const after = await waitFor(`reload ${round}`, async () => {
              const ws = await workers(m);
              const fresh = ws.length === 2 &&
                ws.every((w) => w.state === "ready" && !before.includes(w.pid) && !seen.has(w.pid));
              return fresh ? ws : undefined;
            }, 15_000);
            assert.deepEqual(after.map((w) => w.slot).sort(), [1, 2]);
            await sleep(200);
          }
          await load.stop();
          const failed = load.failed;
          console.log(
            `HUP x3 under load, ${runtime} workers, tcp_migrate_req=${migrateReq}: ${load}`,
          );
          assert.ok(load.ok > 300, `too little load to judge: ${load}`);
          const text = await m.metrics();
          assert.equal(restarts(text, "reload"), 6);
          assert.equal(restarts(text, "crash"), 0);
          await assertCount(m, load.ok, "after three reloads");
          if (migrateReq === 1) assert.equal(failed, 0, String(load));
          // At the kernel's default a retiring listener's close resets what
          // connects in that instant: at most one per client loop and worker.
          assert.ok(failed <= 3 * 6, `more than the accept queue can lose: ${load}`);
        } finally {
          await load?.stop();
          await m.cleanup();
        }
        assert.equal(m.exit?.code, 0, m.stderr);
      }
    });

    test(`forklift run on TTIN and TTOU changes the ${runtime} worker count and keep counts`, async () => {
      const { m, port } = await start(runtime, ["-w", "2"]);
      try {
        await settled(m, 2);
        m.signal("SIGTTIN");
        const three = await settled(m, 3);
        const third = three.find((w) => w.slot === 3)!;
        assert.ok(third, JSON.stringify(three));
        assert.equal(((await m.status()).totals as { workers: number }).workers, 3);
        const load = new Load(port, { concurrency: 2, path: "/pid", pauseMs: 0, total: 200 });
        await load.done;
        assert.equal(load.failed, 0, String(load));
        assert.ok((load.bodies.get(String(third.pid)) ?? 0) > 0, "worker 3 served nothing");
        await assertCount(m, 200, "with three workers");

        m.signal("SIGTTOU");
        const two = await settled(m, 2);
        await waitFor("worker 3 gone", () => !alive(third.pid));
        assert.deepEqual(two.map((w) => w.slot).sort(), [1, 2]);
        assert.match(await m.metrics(), /^forklift_workers 2$/m);
        await assertCount(m, 200, "after TTOU");

        // Never below one worker.
        m.signal("SIGTTOU");
        await settled(m, 1);
        m.signal("SIGTTOU");
        await sleep(300);
        assert.equal((await settled(m, 1)).length, 1);
        for (let i = 0; i < 20; i++) assert.equal((await getFresh(port, "/"))?.status, 200);
        await assertCount(m, 220, "after scaling down to one");
        // One TTIN and two effective TTOUs.
        assert.equal(restarts(await m.metrics(), "scale"), 3);
      } finally {
        await m.cleanup();
      }
      assert.equal(m.exit?.code, 0, m.stderr);
    });

    test(`forklift run replaces a SIGKILLed ${runtime} worker in the same slot`, async () => {
      const { m, port } = await start(runtime, ["-w", "2"]);
      try {
        await settled(m, 2);
        const victim = (await settled(m, 2)).find((w) => w.slot === 1)!;
        const t0 = performance.now();
        process.kill(victim.pid, "SIGKILL");
        const replaced = await waitFor("a new worker 1", async () => {
          const w = (await workers(m)).find((w) => w.slot === 1);
          return w && w.pid !== victim.pid && w.state === "ready" ? w : undefined;
        });
        console.log(`SIGKILL to ready replacement (${runtime}): ${performance.now() - t0 | 0} ms`);
        assert.equal(replaced.generation, 2);
        await settled(m, 2);
        assert.equal(restarts(await m.metrics(), "crash"), 1);
        for (let i = 0; i < 20; i++) assert.equal((await getFresh(port, "/"))?.status, 200);
      } finally {
        await m.cleanup();
      }
    });

    test(`forklift run kills a ${runtime} worker whose event loop blocks (--timeout 2)`, async () => {
      const { m, port } = await start(runtime, ["-w", "1", "--timeout", "2"]);
      try {
        await settled(m, 1);
        const [victim] = await settled(m, 1);
        assert.equal((await getFresh(port, "/block"))?.body, "blocking");
        const t0 = performance.now();
        await waitFor("a new worker 1", async () => {
          const w = (await workers(m)).find((w) => w.slot === 1);
          return w && w.pid !== victim.pid && w.state === "ready";
        }, 10_000);
        const ms = performance.now() - t0;
        console.log(`Blocked ${runtime} worker replaced in ${ms | 0} ms`);
        assert.ok(ms < 2 * 2000 + 1500, `replaced after ${ms | 0} ms`);
        await waitFor("the blocked worker gone", () => !alive(victim.pid), 3_000);
        const text = await m.metrics();
        assert.equal(restarts(text, "timeout"), 1);
        assert.equal(restarts(text, "crash"), 0);
        assert.equal((await getFresh(port, "/"))?.status, 200);
      } finally {
        await m.cleanup();
      }
    });

    test(`forklift run recycles ${runtime} workers after --max-requests, losing no request the accept queue did not hold`, async () => {
      {
        const migrateReq = readMigrateReq();
        const { m, port } = await start(runtime, [
          "-w",
          "2",
          "--max-requests",
          "50",
          "--max-requests-jitter",
          "10",
        ]);
        try {
          await settled(m, 2);
          const load = new Load(port, { concurrency: 2, pauseMs: 8, total: 500 });
          await load.done;
          console.log(`max_requests, ${runtime} workers, tcp_migrate_req=${migrateReq}: ${load}`);
          assert.equal(load.ok + load.failed, 500);
          const recycles = restarts(await m.metrics(), "max_requests");
          assert.ok(recycles >= 3, `only ${recycles} recycles`);
          if (migrateReq === 1) assert.equal(load.failed, 0, String(load));
          assert.ok(load.failed <= 2 * recycles, `more than the accept queue can lose: ${load}`);
          await assertCount(m, load.ok, "across recycles");
          assert.equal(restarts(await m.metrics(), "crash"), 0);
        } finally {
          await m.cleanup();
        }
        assert.equal(m.exit?.code, 0, m.stderr);
      }
    });

    test(`forklift run on HUP applies a changed worker count from the config file (${runtime})`, async () => {
      const dir = mkdtempSync(`${tmpdir()}/forklift-ini-`);
      const ini = `${dir}/forklift.ini`;
      writeFileSync(ini, "[forklift]\nworkers = 2\n");
      const { m } = await start(runtime, ["-c", ini]);
      try {
        await settled(m, 2);
        const before = (await settled(m, 2)).map((w) => w.pid);
        writeFileSync(ini, "[forklift]\nworkers = 3\n");
        m.signal("SIGHUP");
        const after = await waitFor("three workers, the first two rolled", async () => {
          const ws = await workers(m);
          const done = ws.length === 3 && ws.every((w) => w.state === "ready") &&
            ws.every((w) => !before.includes(w.pid));
          return done ? ws : undefined;
        });
        // The added slot starts on the new configuration: rolling it again is waste.
        const gens = Object.fromEntries(after.map((w) => [w.slot, w.generation]));
        assert.deepEqual(gens, { 1: 2, 2: 2, 3: 1 });
        await sleep(500);
        assert.equal((await settled(m, 3)).find((w) => w.slot === 3)?.generation, 1);
        assert.equal(restarts(await m.metrics(), "reload"), 2);
      } finally {
        await m.cleanup();
        rmSync(dir, { recursive: true, force: true });
      }
      assert.equal(m.exit?.code, 0, m.stderr);
    });

    test(`forklift run exits 3 when ${runtime} workers cannot boot, with no respawn storm`, async () => {
      const t0 = performance.now();
      const { m } = await start(runtime, ["-w", "2"], { APP_THROW_AT_IMPORT: "1" });
      const exit = await Promise.race([m.exited, sleep(10_000).then(() => undefined)]);
      const ms = performance.now() - t0;
      try {
        assert.ok(exit, `still running after 10 s:\n${m.stderr}`);
        assert.equal(exit.code, 3, m.stderr);
        assert.ok(ms < 10_000, `exited after ${ms | 0} ms`);
      } finally {
        await m.cleanup();
      }
    });

    test(`forklift run leaves no ${runtime} worker behind when the master is SIGKILLed`, async () => {
      const { m } = await start(runtime, ["-w", "2"]);
      try {
        await settled(m, 2);
        const pids = (await settled(m, 2)).map((w) => w.pid);
        m.signal("SIGKILL");
        await m.exited;
        await sleep(2_000);
        assert.deepEqual(pids.filter(alive), [], "workers still running 2 s after the master died");
      } finally {
        await m.cleanup();
      }
    });

    test(`forklift run stops what a ${runtime} worker started along with it, and --no-inject workers die with the master`, async () => {
      const { m, port } = await start(runtime, ["-w", "1"]);
      let helper = 0;
      try {
        await settled(m, 1);
        helper = Number((await getFresh(port, "/helper"))?.body);
        assert.ok(helper > 0 && alive(helper));
        m.signal("SIGTERM");
        assert.equal((await m.exited).code, 0, m.stderr);
        await waitFor("the app's helper gone", () => !alive(helper), 3_000);
      } finally {
        await m.cleanup();
        if (helper > 0 && alive(helper)) process.kill(helper, "SIGKILL");
      }
      // A worker without the reporter hears nothing of its master's death by itself.
      const plain = await start(runtime, ["-w", "1", "--no-inject"]);
      try {
        const [w] = await settled(plain.m, 1);
        plain.m.signal("SIGKILL");
        await plain.m.exited;
        await waitFor("the --no-inject worker gone", () => !alive(w.pid), 4_000);
      } finally {
        await plain.m.cleanup();
      }
    });

    test(`forklift run calls every hook in order with ${runtime} workers`, async () => {
      const dir = mkdtempSync(`${tmpdir()}/forklift-hooks-`);
      const log = `${dir}/hooks.jsonl`;
      const { m } = await start(runtime, ["-w", "1", "--hooks", HOOKS], { HOOKS_LOG: log });
      try {
        await settled(m, 1);
        const [first] = await settled(m, 1);
        m.signal("SIGHUP");
        const [second] = await waitFor("the reload", async () => {
          const ws = await workers(m);
          const done = ws.length === 1 && ws[0].state === "ready" && ws[0].pid !== first.pid;
          return done ? ws : undefined;
        });
        await waitFor("generation 1's exit", () => readFileSync(log, "utf8").includes("childExit"));
        m.signal("SIGTERM");
        await m.exited;
        assert.equal(m.exit?.code, 0, m.stderr);
        const calls = readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l));
        const master = { pid: m.pid, workers: 1, command: calls[0].arg.command };
        assert.ok(Array.isArray(master.command) && master.command.length > 0);
        assert.deepEqual(calls, [
          { hook: "onStarting", arg: master },
          { hook: "preFork", arg: { slot: 1, generation: 1, pid: null } },
          {
            hook: "postFork",
            arg: { slot: 1, generation: 1, pid: first.pid, exitCode: null, signal: null },
          },
          { hook: "whenReady", arg: master },
          { hook: "onReload", arg: master },
          { hook: "preFork", arg: { slot: 1, generation: 2, pid: null } },
          {
            hook: "postFork",
            arg: { slot: 1, generation: 2, pid: second.pid, exitCode: null, signal: null },
          },
          {
            hook: "childExit",
            arg: {
              slot: 1,
              generation: 1,
              pid: first.pid,
              exitCode: 0,
              signal: null,
              reason: "reload",
            },
          },
          {
            hook: "childExit",
            arg: {
              slot: 1,
              generation: 2,
              pid: second.pid,
              exitCode: 0,
              signal: null,
              reason: "stop",
            },
          },
          { hook: "onExit", arg: master },
        ]);
      } finally {
        await m.cleanup();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test(`forklift run survives a throwing postFork hook with ${runtime} workers`, async () => {
      const { m, port } = await start(runtime, ["-w", "1", "--hooks", HOOKS], {
        HOOKS_THROW: "postFork",
      });
      try {
        await settled(m, 1);
        assert.equal((await getFresh(port, "/"))?.status, 200);
      } finally {
        await m.cleanup();
      }
      assert.equal(m.exit?.code, 0, m.stderr);
    });

    test(`forklift run writes and removes the pid file and shows transitions (${runtime})`, async () => {
      const dir = mkdtempSync(`${tmpdir()}/forklift-pid-`);
      const pidFile = `${dir}/forklift.pid`;
      const { m } = await start(runtime, ["-w", "1", "--pid-file", pidFile]);
      try {
        await settled(m, 1);
        assert.equal(readFileSync(pidFile, "utf8"), `${m.pid}\n`);
        const [w] = await settled(m, 1);
        const transitions = w.transitions as Array<{ state: string; at: string }>;
        assert.deepEqual(transitions.map((t) => t.state), ["starting", "hello", "ready"]);
        let previous = 0;
        for (const t of transitions) {
          const at = Date.parse(t.at);
          assert.ok(at >= previous && Math.abs(Date.now() - at) < 60_000, JSON.stringify(t));
          previous = at;
        }
        m.signal("SIGTERM");
        await m.exited;
        assert.equal(m.exit?.code, 0, m.stderr);
        assert.equal(existsSync(pidFile), false, "pid file left behind");
      } finally {
        await m.cleanup();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test(`forklift run cuts a graceful stop short on a second INT (${runtime})`, async () => {
      const { m, port } = await start(runtime, ["-w", "1", "--graceful-timeout", "20"]);
      try {
        await settled(m, 1);
        const slow = getFresh(port, "/slow?ms=15000", 20_000);
        await sleep(300);
        m.signal("SIGTERM");
        await waitFor("a stopping worker", async () => (await workers(m))[0]?.state === "stopping");
        await sleep(300);
        assert.equal(m.exit, undefined, "a graceful stop must wait for the slow request");
        const t0 = performance.now();
        m.signal("SIGINT");
        const exit = await m.exited;
        const ms = performance.now() - t0;
        assert.ok(ms < 3_000, `quick stop took ${ms | 0} ms`);
        assert.equal(exit.code, 0, m.stderr);
        await slow;
      } finally {
        await m.cleanup();
      }
    });
  });
}

describe("forklift run hooks at start-up", { skip: !RUNTIMES.deno && !RUNTIMES.bun }, () => {
  test("forklift run exits 2 when the onStarting hook throws", async () => {
    const runtime = RUNTIMES.bun ? "bun" : "deno";
    const { m } = await start(runtime, ["-w", "1", "--hooks", HOOKS], {
      HOOKS_THROW: "onStarting",
    });
    try {
      await m.exited;
      assert.equal(m.exit?.code, 2, m.stderr);
      assert.match(m.stderr, /onStarting refuses/);
    } finally {
      await m.cleanup();
    }
  });
});
