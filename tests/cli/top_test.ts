import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import process from "node:process";
import { cleanEnv, MAIN, ROOT, runCli, runtimeArgv } from "../_helpers/cli.ts";
import {
  alive,
  freePort,
  getFresh,
  Master,
  RUNTIMES,
  serverArgv,
  sleep,
  startWorkers,
  waitFor,
} from "../_helpers/master.ts";
import { testRuntime } from "../_helpers/runtime.ts";
import { histogramQuantile, renderTop, TOP_COLUMNS, topFrame } from "../../src/cli/top_view.ts";
import type { StatusDocument, WorkerStatus } from "../../src/export/status.ts";
import { workerStatus } from "../_helpers/worker_status.ts";

const APP = `${ROOT}tests/fixtures/master/burn_app.ts`;
const NO_TMUX = spawnSync("tmux", ["-V"]).status === 0 ? false : "needs tmux (.ci/run installs it)";

test("histogramQuantile() interpolates within the bucket that holds the rank, as Prometheus does", () => {
  const b = [0.005, 0.01, 0.025, 0.05, 0.1];
  // 100 observations: 10 / 20 / 30 / 25 / 10 / 5 past every bound.
  const c = [10, 20, 30, 25, 10, 5];
  assert.equal(histogramQuantile(0.1, b, c), 0.005);
  assert.ok(Math.abs(histogramQuantile(0.5, b, c)! - (0.01 + 0.015 * (20 / 30))) < 1e-12);
  assert.ok(Math.abs(histogramQuantile(0.9, b, c)! - (0.05 + 0.05 * (5 / 10))) < 1e-12);
  // Past every bound: the highest bound.
  assert.equal(histogramQuantile(0.99, b, c), 0.1);
  assert.equal(histogramQuantile(1, b, c), 0.1);
  // The lowest bucket starts at 0.
  assert.equal(histogramQuantile(0.05, b, c), 0.0025);
  assert.equal(histogramQuantile(0, b, c), 0);
  // A first bound at or below 0 is all that is known of the lowest bucket.
  assert.equal(histogramQuantile(0.5, [-1, 1], [5, 0, 0]), -1);
  assert.equal(histogramQuantile(-0.1, b, c), -Infinity);
  assert.equal(histogramQuantile(1.1, b, c), Infinity);
});

test("histogramQuantile() is null for an empty or malformed histogram", () => {
  assert.equal(histogramQuantile(0.5, [0.1, 1], [0, 0, 0]), null);
  assert.equal(histogramQuantile(0.5, [0.1, 1], [1, 2]), null);
  assert.equal(histogramQuantile(0.5, [], [3]), null);
  // Negative counts (a hostile document) count as none.
  assert.equal(histogramQuantile(0.5, [0.1], [-5, 0]), null);
});

function worker(slot: number, extra: Partial<WorkerStatus> = {}): WorkerStatus {
  return workerStatus(slot, {
    ready_at: null,
    handshake_ms: null,
    last_harvest_at: null,
    last_seen_at: null,
    requests: 0,
    cpu: 0.25,
    memory_bytes: 50 * 1024 * 1024,
    heap_used_bytes: 6 * 1024 * 1024,
    loop_delay_p99_seconds: 0.0012,
    ...extra,
  });
}

function doc(workers: WorkerStatus[]): StatusDocument {
  return {
    pid: 99,
    version: "0.1.0",
    started_at: "2025-01-01T00:00:00.000Z",
    uptime_s: 3700,
    service_name: "api",
    master_timers_armed: 0,
    ready: true,
    ready_reason: "2 of 2 workers ready",
    workers,
    totals: { workers: workers.length, requests: 0, restarts: 0, harvests: 0, dropped_points: 0 },
  };
}

test("topFrame() gives each worker's requests a second and latency over the time between two reads", () => {
  const h = (counts: number[]) => ({ boundaries: [0.01, 0.1], bucket_counts: counts });
  const prev = doc([worker(1, { requests: 100, request_duration: h([50, 50, 0]) }), worker(2)]);
  const cur = doc([
    worker(1, { requests: 300, request_duration: h([50, 250, 0]) }),
    worker(2, { pid: 2002, spawned_at: "2025-01-01T00:00:09.000Z", requests: 5 }),
  ]);
  const f = topFrame(
    { at: 1000, status: prev },
    { at: 3000, status: cur },
    Date.parse(cur.started_at) + 10_000,
  );
  assert.equal(f.rows[0].requestsPerSecond, 100);
  assert.ok(Math.abs(f.rows[0].p50! - (0.01 + 0.09 * 0.5)) < 1e-12, `${f.rows[0].p50}`);
  assert.ok(Math.abs(f.rows[0].p99! - (0.01 + 0.09 * 0.99)) < 1e-12, `${f.rows[0].p99}`);
  // A new process in slot 2: no rate until it is read twice.
  assert.equal(f.rows[1].requestsPerSecond, null);
  assert.equal(f.rows[1].uptime, 1);
  assert.equal(f.requestsPerSecond, 100);
  assert.equal(f.p50, f.rows[0].p50);
});

test("renderTop() drops columns from the right to fit the terminal, and keeps one row per worker", () => {
  const frame = topFrame(undefined, { at: 0, status: doc([worker(1), worker(2)]) }, 0);
  const wide = renderTop(frame, 200);
  const titles = (line: string) => line.trim().split(/\s{2,}/);
  assert.deepEqual(titles(wide[3]), TOP_COLUMNS.map((c) => c.title));
  assert.equal(wide.length, 6);
  assert.match(wide[4], /^\s*1\s+1001\s+1\s+ready\s+25\.0%\s+50\.0 MiB\s+6\.0 MiB\s+1\.2 ms\s+-/);
  let before = TOP_COLUMNS.length;
  for (const width of [100, 80, 60, 40, 30, 20, 10]) {
    const lines = renderTop(frame, width);
    for (const l of lines) assert.ok(l.length <= width, `${width}: ${JSON.stringify(l)}`);
    const shown = titles(lines[3]);
    assert.deepEqual(shown, TOP_COLUMNS.slice(0, shown.length).map((c) => c.title), `${width}`);
    assert.ok(shown.length <= before, `${width}: ${shown}`);
    before = shown.length;
    assert.equal(lines.length, 6, `${width}: a row per worker`);
  }
  // Narrower than the first column: cut, never wrapped.
  assert.deepEqual(renderTop(frame, 3).map((l) => l.length <= 3), Array(6).fill(true));
  assert.deepEqual(titles(renderTop(frame, 20)[3]), ["SLOT", "PID", "GEN"]);
});

test("renderTop() draws a document with fields missing or of the wrong type, with dashes", () => {
  const odd = {
    slot: 1,
    pid: 5,
    generation: "x",
    requests: "many",
    cpu: "hot",
    memory_bytes: -Infinity,
  } as unknown as WorkerStatus;
  const status = {
    ...doc([odd]),
    uptime_s: "long",
    totals: undefined,
  } as unknown as StatusDocument;
  const prev = { at: 0, status: { ...status, workers: [{ ...odd }] } };
  const lines = renderTop(topFrame(prev, { at: 1000, status }, Date.now()), 160);
  assert.equal(lines.length, 5);
  assert.match(lines[0], /up -/);
  assert.match(lines[4], /^\s*1\s+5\s+x\s+undefined\s+-\s+-\s+-\s+-\s+-/);
});

/** Runs one tmux command on the test's own server; bounded in time. */
function tmux(socket: string, ...args: string[]): string {
  return execFileSync("tmux", ["-L", socket, ...args], {
    encoding: "utf8",
    timeout: 5_000,
    env: cleanEnv({ TERM: "xterm-256color" }),
  });
}

function quote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** Worker rows on a captured screen: slot, pid and generation. */
function rows(screen: string): Array<{ slot: number; pid: number; gen: number }> {
  return [...screen.matchAll(/^\s*(\d+)\s+(\d+)\s+(\d+)\s+(?:starting|ready|stopping)\s/gm)].map((
    m,
  ) => ({
    slot: Number(m[1]),
    pid: Number(m[2]),
    gen: Number(m[3]),
  }));
}

describe("forklift top", { skip: !RUNTIMES.deno && !RUNTIMES.bun }, () => {
  const runtime = RUNTIMES[testRuntime()] ? testRuntime() : RUNTIMES.deno ? "deno" : "bun";

  test("forklift top --once prints one plain-text view with a row per worker, and so does top when not on a terminal", async () => {
    const { master: m, port } = await startWorkers(runtime, APP, {
      workers: 2,
      env: { BURN: "0" },
    });
    try {
      for (let i = 0; i < 5; i++) await getFresh(port, "/");
      const bind = `127.0.0.1:${m.metricsPort}`;
      for (const args of [["top", "--once"], ["top"]]) {
        const r = await runCli([...args, "--metrics-bind", bind], { timeoutMs: 15_000 });
        assert.equal(r.code, 0, r.stderr);
        assert.ok(!r.stdout.includes("\u001b"), "no escape sequences");
        assert.match(r.stdout, new RegExp(`master pid ${m.pid}`));
        assert.match(r.stdout, /^\s*SLOT\s+PID\s+GEN\s+STATE\s+CPU\s+MEM/m);
        assert.deepEqual(rows(r.stdout).map((w) => w.slot), [1, 2]);
      }
      const refused = await runCli(["top", "--once", "--metrics-bind", "127.0.0.1:1"]);
      assert.equal(refused.code, 1);
      assert.match(
        refused.stderr,
        /^forklift: No forklift master answers at http:\/\/127\.0\.0\.1:1\/status/,
      );
    } finally {
      await m.cleanup();
    }
  });

  test("forklift top sends metrics_token as forklift status does, and says so in one line when the master asks for it", async () => {
    const token = "t0p-s3cret-token";
    const m = new Master(
      ["-w", "1", "--metrics-bind", "127.0.0.1:0", "--", ...serverArgv(runtime, APP)],
      {
        env: cleanEnv({ PORT: String(await freePort()), BURN: "0", FORKLIFT_METRICS_TOKEN: token }),
      },
    );
    try {
      await m.waitLog(/Serving metrics at/);
      const bind = `127.0.0.1:${m.metricsPort}`;
      const refused = await runCli(["top", "--once", "--metrics-bind", bind]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /^forklift: The master at \S+ asks for a credential/);
      assert.equal(refused.stderr.trim().split("\n").length, 1, refused.stderr);
      const shown = await waitFor("a ready row", async () => {
        const r = await runCli(["top", "--once", "--metrics-bind", bind], {
          env: cleanEnv({ FORKLIFT_METRICS_TOKEN: token }),
        });
        for (const w of rows(r.stdout)) m.workerPids.add(w.pid);
        return r.code === 0 && /^\s*1\s+\d+\s+1\s+ready/m.test(r.stdout) ? r : undefined;
      }, 15_000);
      assert.ok(!shown.stdout.includes(token));
    } finally {
      await m.cleanup();
    }
  });

  test(
    "forklift top in a terminal shows a row per worker, adds one on +, reloads on r and quits on q or Ctrl-C with the terminal restored",
    {
      skip: NO_TMUX,
    },
    async () => {
      const { master: m } = await startWorkers(runtime, APP, { workers: 2, env: { BURN: "0" } });
      const socket = `forklift-top-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
      let panePid: number | undefined;
      try {
        // Deno's child processes get the test's environment too: the pane starts from a clean one.
        const clean = [
          "env",
          "-i",
          `PATH=${process.env.PATH}`,
          `HOME=${process.env.HOME}`,
          "TERM=xterm-256color",
        ];
        const top = [
          ...clean,
          ...runtimeArgv(MAIN),
          "top",
          "--metrics-bind",
          `127.0.0.1:${m.metricsPort}`,
        ]
          .map(quote).join(" ");
        tmux(
          socket,
          "new-session",
          "-d",
          "-x",
          "160",
          "-y",
          "40",
          "-s",
          "top",
          `sh -c ${
            quote(
              `${top}; echo TOP-EXITED $?; stty -a | grep -o -- '[-]\\?icanon'; sleep 1; ` +
                `${top}; echo CTRL-C-EXITED $?; stty -a | grep -o -- '[-]\\?icanon'; sleep 30`,
            )
          }`,
        );
        panePid = Number(tmux(socket, "display-message", "-p", "-t", "top", "#{pane_pid}").trim());
        const screen = () => tmux(socket, "capture-pane", "-p", "-t", "top");
        /** Waits for `check` to find something on the screen; the screen is in the error. */
        const onScreen = async <T>(
          what: string,
          check: (s: string) => T | undefined,
          ms: number,
        ) => {
          let last = "";
          try {
            return await waitFor(what, () => check(last = screen()), ms);
          } catch (e) {
            throw new Error(`${(e as Error).message}; the screen:\n${last}`);
          }
        };
        const two = await onScreen("two rows", (s) => {
          const r = rows(s);
          return r.length === 2 ? r : undefined;
        }, 15_000);
        assert.deepEqual(two.map((w) => w.slot), [1, 2]);
        assert.match(
          screen(),
          /SLOT\s+PID\s+GEN\s+STATE\s+CPU\s+MEM\s+HEAP\s+LOOP P99\s+REQ\/S\s+P50\s+P99\s+RESTARTS\s+UPTIME/,
        );
        assert.match(screen(), new RegExp(`master pid ${m.pid}`));

        tmux(socket, "send-keys", "-t", "top", "+");
        await onScreen(
          "a third row",
          (s) => rows(s).some((w) => w.slot === 3) || undefined,
          15_000,
        );

        tmux(socket, "send-keys", "-t", "top", "r");
        // The reload reads -w 2 again: slot 3 goes, slots 1 and 2 are rolled.
        await onScreen("slots 1 and 2 in a new generation", (s) => {
          const r = rows(s).filter((w) => w.slot < 3);
          return r.length === 2 && r.every((w) => w.gen === 2) &&
              r.every((w) => !two.some((o) => o.pid === w.pid)) ||
            undefined;
        }, 20_000);

        tmux(socket, "send-keys", "-t", "top", "q");
        const after = await onScreen("top exits", (s) => {
          return /TOP-EXITED \d+/.test(s) && /icanon/.test(s.split("TOP-EXITED")[1])
            ? s
            : undefined;
        }, 10_000);
        assert.match(after, /TOP-EXITED 0/);
        // The normal screen is back (no table left on it) and the line discipline is cooked again.
        assert.doesNotMatch(after, /SLOT\s+PID/);
        assert.match(after.split("TOP-EXITED 0")[1], /^\s*icanon\s*$/m);

        // Again, and out with Ctrl-C.
        await onScreen("a second top", (s) => rows(s).length >= 2 || undefined, 15_000);
        tmux(socket, "send-keys", "-t", "top", "C-c");
        const interrupted = await onScreen("top exits on Ctrl-C", (s) => {
          return /CTRL-C-EXITED \d+/.test(s) && /icanon/.test(s.split("CTRL-C-EXITED")[1])
            ? s
            : undefined;
        }, 10_000);
        assert.match(interrupted, /CTRL-C-EXITED 0/);
        assert.doesNotMatch(interrupted, /SLOT\s+PID/);
        assert.match(interrupted.split("CTRL-C-EXITED 0")[1], /^\s*icanon\s*$/m);
      } finally {
        try {
          tmux(socket, "kill-server");
        } catch {
          // Already gone.
        }
        if (panePid !== undefined && alive(panePid)) process.kill(panePid, "SIGKILL");
        await m.cleanup();
        await sleep(0);
      }
    },
  );
});
