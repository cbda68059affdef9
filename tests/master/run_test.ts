import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { ROOT, runCli } from "../_helpers/cli.ts";
import { assertPromtoolAccepts, NEEDS_PROMTOOL } from "../_helpers/promtool.ts";
import {
  alive,
  getFresh,
  RUNTIMES,
  serverArgv,
  startWorkers,
  sumSamples,
  waitFor,
} from "../_helpers/master.ts";

const APP = `${ROOT}tests/fixtures/master/app.ts`;
const PLAIN = `${ROOT}tests/fixtures/deno_plain.ts`;
const EXIT = `${ROOT}tests/fixtures/master/exit_code.ts`;
const COUNT = "http_server_request_duration_seconds_count";

for (const runtime of ["deno", "bun"] as const) {
  describe(`forklift run with ${runtime} workers`, { skip: !RUNTIMES[runtime] }, () => {
    test(`forklift run shares one port between two ${runtime} workers`, async () => {
      const { master: m, port } = await startWorkers(runtime, APP);
      try {
        const ready = await m.readyPids();
        assert.equal(ready.length, 2);
        const seen = new Map<number, number>();
        for (let i = 0; i < 200; i++) {
          const r = await getFresh(port, "/pid");
          assert.ok(r, `request ${i} failed`);
          const pid = Number(r.body);
          seen.set(pid, (seen.get(pid) ?? 0) + 1);
        }
        assert.deepEqual([...seen.keys()].sort(), [...ready].sort(), `answers: ${[...seen]}`);
      } finally {
        await m.cleanup();
      }
    });

    test(`forklift run counts every ${runtime} request exactly, also after a worker retires`, async () => {
      const { master: m, port } = await startWorkers(runtime, APP, { harvestInterval: 0.5 });
      try {
        const K = 120;
        let ok = 0;
        for (let i = 0; i < K; i++) if ((await getFresh(port, "/"))?.status === 200) ok++;
        assert.equal(ok, K);
        // Within one harvest interval (plus delivery) the master has them all.
        await waitFor("exact count", async () => sumSamples(await m.metrics(), COUNT) === K, 2_000);
        // TTOU retires worker 2 gracefully: its final harvest keeps its count.
        const second = (await m.status()).workers.find((w) => w.slot === 2)?.pid as number;
        m.signal("SIGTTOU");
        await m.waitReady(1);
        await waitFor("worker 2 gone", () => !alive(second));
        for (let i = 0; i < 30; i++) assert.equal((await getFresh(port, "/"))?.status, 200);
        await waitFor(
          "exact count after retirement",
          async () => sumSamples(await m.metrics(), COUNT) === K + 30,
          2_000,
        );
        // /status's total keeps the retired worker's requests too.
        await waitFor(
          "total in /status",
          async () => ((await m.status()).totals as { requests: number }).requests === K + 30,
          2_000,
        );
      } finally {
        await m.cleanup();
      }
      assert.equal(m.exit?.code, 0, m.stderr);
    });

    test(`forklift run waits for a ${runtime} worker that takes 1.5 s to listen`, async () => {
      const { master: m, port } = await startWorkers(runtime, APP, {
        workers: 1,
        env: { APP_BOOT_MS: "1500" },
      });
      try {
        const [w] = (await m.status()).workers;
        const bootMs = Date.parse(w.ready_at as string) - Date.parse(w.spawned_at as string);
        assert.ok(bootMs >= 1500, `ready after ${bootMs} ms`);
        assert.match(String(w.addr), new RegExp(`:${port}$`), "ready as its server reported it");
        assert.doesNotMatch(m.stderr, /taking it as ready/);
        assert.equal((await getFresh(port, "/"))?.status, 200);
        // The metrics endpoint waits for ready workers only a short while.
        const serving = m.stderr.search(/Serving metrics at/);
        const ready = m.stderr.search(/Worker 1 \(pid \d+, generation 1\) ready/);
        assert.ok(serving >= 0 && serving < ready, m.stderr);
      } finally {
        await m.cleanup();
      }
    });
  });
}

describe("forklift run's channel socket", () => {
  for (const runtime of ["deno", "bun"] as const) {
    test(
      `forklift run's ${runtime} workers talk over the socket, and keep its token from the app's own subprocesses`,
      {
        skip: !RUNTIMES[runtime],
      },
      async () => {
        const { master: m, port } = await startWorkers(runtime, APP, { workers: 1 });
        try {
          const r = await getFresh(port, "/childenv?name=FORKLIFT_CHANNEL_TOKEN");
          assert.equal(r?.status, 200);
          assert.equal(r?.body, "", "a subprocess inherited the token");
          assert.notEqual((await getFresh(port, "/childenv?name=FORKLIFT_CHANNEL"))?.body, "");
          assert.equal(
            (await getFresh(port, "/ipc"))?.body,
            "none",
            "a Node IPC channel was opened",
          );
          // The handshake went over the socket: the worker is ready and counted.
          await getFresh(port, "/");
          await waitFor("count", async () => sumSamples(await m.metrics(), COUNT) >= 4, 3_000);
        } finally {
          await m.cleanup();
        }
      },
    );
  }
});

describe("forklift run with Deno's permissions scoped", { skip: !RUNTIMES.deno }, () => {
  test("forklift run's Deno workers reach the master under --allow-net and --allow-env lists of their own", async () => {
    const { master: m, port } = await startWorkers("deno", PLAIN, {
      workers: 2,
      command: (port) => [
        RUNTIMES.deno!,
        "run",
        `--allow-net=127.0.0.1:${port}`,
        "--allow-env=PORT",
        PLAIN,
      ],
    });
    try {
      for (let i = 0; i < 6; i++) assert.equal((await getFresh(port, "/"))?.status, 200);
      await waitFor(
        "count",
        async () =>
          sumSamples(await m.metrics(), "http_server_request_duration_seconds_count") === 6,
        3_000,
      );
    } finally {
      await m.cleanup();
    }
  });
});

describe("forklift run /metrics", { skip: !RUNTIMES.deno && !RUNTIMES.bun }, () => {
  test(
    "forklift run's /metrics passes promtool check metrics",
    { skip: NEEDS_PROMTOOL },
    async () => {
      const runtime = RUNTIMES.bun ? "bun" : "deno";
      const { master: m, port } = await startWorkers(runtime, APP);
      try {
        for (let i = 0; i < 20; i++) await getFresh(port, i % 2 ? "/" : "/pid");
        await waitFor("harvest", async () => sumSamples(await m.metrics(), COUNT) === 20, 3_000);
        const res = await m.get("/metrics");
        assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
        const text = await res.text();
        assert.match(text, /^forklift_workers 2$/m);
        assert.match(text, /^forklift_worker_restarts_total\{reason="crash"\} 0$/m);
        assert.match(text, /^http_server_request_duration_seconds_bucket\{.*le="\+Inf"\} /m);
        assertPromtoolAccepts(text);
      } finally {
        await m.cleanup();
      }
    },
  );
});

describe("forklift run exit codes", () => {
  test("forklift run exits 127 for a command not on PATH", async () => {
    const r = await runCli(["run", "--", "no-such-program-here", "x"]);
    assert.equal(r.code, 127);
    assert.equal(r.stderr, "forklift: Command not found: no-such-program-here (searched PATH)\n");
  });

  test("forklift run exits 126 for a file that is not executable", async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-run-`);
    try {
      writeFileSync(`${dir}/script.sh`, "#!/bin/sh\necho hi\n");
      chmodSync(`${dir}/script.sh`, 0o644);
      const r = await runCli(["run", "--", `${dir}/script.sh`]);
      assert.equal(r.code, 126);
      assert.match(r.stderr, /^forklift: Command not executable: .*script\.sh/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const rt = RUNTIMES.bun ? "bun" : "deno";
  const once = (outcome: string) =>
    runCli(["run", "--once", "--metrics-bind", "off", "--", ...serverArgv(rt, EXIT), outcome]);

  test("forklift run --once exits with the program's own code", async () => {
    const r = await once("7");
    assert.equal(r.code, 7, r.stderr);
  });

  test("forklift run --once exits 128+N when the program dies by signal N", async () => {
    const r = await once("SIGTERM");
    assert.equal(r.code, 143, r.stderr);
  });

  test("forklift run --dry-run prints each worker's argv and env", {
    skip: RUNTIMES.deno ? false : "needs deno, whose workers' argv it prints",
  }, async () => {
    const deno = RUNTIMES.deno!;
    const r = await runCli([
      "run",
      "--dry-run",
      "-w",
      "2",
      "--",
      deno,
      "serve",
      "--port",
      "9000",
      "app.ts",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines.length, 5);
    assert.match(
      lines[0],
      /^worker 1: env FORKLIFT_MASTER_PID=(\d+) FORKLIFT_WORKER_ID=1 FORKLIFT_WORKERS=2 FORKLIFT_CHANNEL=(\S+\/forklift-channel-[0-9a-f]{16}\/channel\.sock) FORKLIFT_CHANNEL_TOKEN='<random>' DENO_AUTO_SERVE=1 DENO_SERVE_ADDRESS=tcp:0\.0\.0\.0:9000$/,
    );
    assert.match(
      lines[1],
      /^worker 1: argv \S+ run --unstable-net --preload \S+preload\.ts --allow-env=FORKLIFT_MASTER_PID,FORKLIFT_WORKER_ID,FORKLIFT_WORKERS,FORKLIFT_CHANNEL,FORKLIFT_CHANNEL_TOKEN --allow-read=(\S+\.sock) --allow-write=\1 --allow-net=unix:\1 app\.ts$/,
    );
    assert.match(lines[2], /FORKLIFT_WORKER_ID=2/);
    assert.equal(lines[4], "reporter: preloaded (deno)");
  });
});
