import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { cleanEnv, ROOT, runCli } from "../_helpers/cli.ts";
import { freePort, Master, RUNTIMES, serverArgv, waitFor } from "../_helpers/master.ts";

describe("forklift status", () => {
  test("forklift status prints a running master's workers, as text and as JSON", {
    skip: !RUNTIMES.bun && !RUNTIMES.deno,
  }, async () => {
    const runtime = RUNTIMES.bun ? "bun" : "deno";
    const port = await freePort();
    const m = new Master(
      [
        "-w",
        "2",
        "--metrics-bind",
        "127.0.0.1:0",
        "--",
        ...serverArgv(runtime, `${ROOT}tests/fixtures/master/app.ts`),
      ],
      { env: cleanEnv({ PORT: String(port) }) },
    );
    try {
      await m.waitReady(2);
      const bind = `127.0.0.1:${m.metricsPort}`;
      const text = await runCli(["status", "--metrics-bind", bind]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, new RegExp(`master pid ${m.pid}`));
      assert.equal(
        text.stdout.split("\n").filter((l) => /^\d+\s+\d+\s+1\s+ready/.test(l)).length,
        2,
      );
      const json = await runCli(["status", "--json", "--metrics-bind", bind]);
      const doc = JSON.parse(json.stdout);
      assert.equal(doc.pid, m.pid);
      assert.deepEqual(doc.workers.map((w: { slot: number }) => w.slot), [1, 2]);
    } finally {
      await m.cleanup();
    }
  });

  for (const runtime of ["bun", "deno"] as const) {
    test(
      `forklift status exits 1 until the first boot is done and once stopping, as GET /ready answers 503 (${runtime} workers)`,
      {
        skip: !RUNTIMES[runtime] && `needs ${runtime}`,
      },
      async () => {
        const port = await freePort();
        const m = new Master(
          [
            "-w",
            "2",
            "--graceful-timeout",
            "10",
            "--metrics-bind",
            "127.0.0.1:0",
            "--",
            ...serverArgv(runtime, `${ROOT}tests/fixtures/master/app.ts`),
          ],
          { env: cleanEnv({ PORT: String(port), APP_BOOT_MS: "1500" }), deadlineMs: 30_000 },
        );
        try {
          await m.waitLog(/Serving metrics/);
          const bind = `127.0.0.1:${m.metricsPort}`;
          const booting = await m.get("/ready");
          assert.equal(booting.status, 503);
          assert.match(await booting.text(), /^not ready: booting: [01] of 2 workers ready\n$/);
          assert.equal((await m.get("/live")).status, 200);
          const early = await runCli(["status", "--metrics-bind", bind]);
          assert.equal(early.code, 1, early.stderr);
          assert.match(early.stdout, /^not ready: booting/m);
          assert.match(early.stderr, /is not ready: booting: [01] of 2 workers ready/);

          await m.waitReady(2);
          const ready = await m.get("/ready");
          assert.equal(ready.status, 200);
          assert.equal(await ready.text(), "ready: 2 of 2 workers ready\n");
          const text = await runCli(["status", "--metrics-bind", bind]);
          assert.equal(text.code, 0, text.stderr);
          const json = await runCli(["status", "--json", "--metrics-bind", bind]);
          assert.equal(JSON.parse(json.stdout).ready, true);

          // A request in flight holds the graceful stop open: the master is
          // still there, alive, and no longer ready.
          const slow = fetch(`http://127.0.0.1:${port}/slow?ms=2000`).then((r) => r.text());
          await new Promise((r) => setTimeout(r, 200));
          m.signal("SIGTERM");
          await m.waitLog(/Received SIGTERM/);
          const stopping = await waitFor("/ready to answer 503", async () => {
            const res = await m.get("/ready");
            const body = await res.text();
            return res.status === 503 ? body : undefined;
          }, 1_500);
          assert.equal(stopping, "not ready: stopping\n");
          assert.equal((await m.get("/live")).status, 200);
          const late = await runCli(["status", "--metrics-bind", bind]);
          assert.equal(late.code, 1, late.stderr);
          assert.equal(await slow, "slow");
          assert.equal((await m.exited).code, 0, m.stderr);
        } finally {
          await m.cleanup();
        }
      },
    );
  }

  test("forklift status says so when no master answers", async () => {
    const port = await freePort();
    const r = await runCli(["status", "--metrics-bind", `127.0.0.1:${port}`]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `forklift: No forklift master answers at http://127.0.0.1:${port}/status: connection refused (is a master running with this metrics_bind?)\n`,
    );
  });

  test("forklift status asks a master bound to every address on loopback, IPv6 in brackets", async () => {
    const port = await freePort();
    for (
      const [bind, url] of [[`:${port}`, `127.0.0.1:${port}`], [`[::]:${port}`, `[::1]:${port}`]]
    ) {
      const r = await runCli(["status", "--metrics-bind", bind]);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        new RegExp(
          `^forklift: No forklift master answers at http://${
            url.replace(/[[\]]/g, "\\$&")
          }/status: `,
        ),
      );
    }
  });
});
