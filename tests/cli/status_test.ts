import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { cleanEnv, ROOT, runCli } from "../_helpers/cli.ts";
import { freePort, Master, RUNTIMES, serverArgv } from "../_helpers/master.ts";

describe("forklift status", () => {
  test("statusCommand() prints a running master's workers, as text and as JSON", {
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

  test("statusCommand() says so when no master answers", async () => {
    const port = await freePort();
    const r = await runCli(["status", "--metrics-bind", `127.0.0.1:${port}`]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `forklift: No forklift master answers at http://127.0.0.1:${port}/status: connection refused (is a master running with this metrics_bind?)\n`,
    );
  });
});
