import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { ROOT, runCli } from "../_helpers/cli.ts";
import { freePort, Master, RUNTIMES, serverArgv, waitFor } from "../_helpers/master.ts";
import { cleanEnv } from "../_helpers/cli.ts";

const PRINT = `${ROOT}tests/fixtures/master/print.ts`;
const runtime = RUNTIMES.bun ? "bun" : "deno";

describe("forklift logging", { skip: !RUNTIMES.bun && !RUNTIMES.deno }, () => {
  test("forklift run --log-format json writes one JSON object per line, worker output wrapped too", async () => {
    const r = await runCli([
      "run",
      "--once",
      "--log-format",
      "json",
      "--metrics-bind",
      "off",
      "--",
      ...serverArgv(runtime, PRINT),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { worker: 1, stream: "stdout", line: "hello out" });
    const records = r.stderr.trim().split("\n").map((l) => JSON.parse(l));
    assert.ok(
      records.some((x) => x.worker === 1 && x.stream === "stderr" && x.line === "hello err"),
    );
    const logs = records.filter((x) => x.level !== undefined);
    assert.ok(logs.length >= 3, r.stderr);
    assert.ok(logs.every((x) => typeof x.message === "string" && x.logger === "forklift.arbiter"));
    // Values read in the message as in the text format, and stay typed in the properties.
    const started = logs.find((x) => /^Started 1 worker\(s\): /.test(x.message));
    assert.ok(started, r.stderr);
    assert.doesNotMatch(started.message, /"/);
    assert.equal(started.properties.n, 1);
  });

  test("forklift run --log-file appends to the file and honours log_level", async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-log-`);
    try {
      const file = `${dir}/master.log`;
      const r = await runCli([
        "run",
        "--once",
        "--log-file",
        file,
        "--log-level",
        "warning",
        "--metrics-bind",
        "off",
        "--",
        ...serverArgv(runtime, `${ROOT}tests/fixtures/master/exit_code.ts`),
        "5",
      ]);
      assert.equal(r.code, 5);
      assert.ok(existsSync(file));
      assert.equal(readFileSync(file, "utf8"), "", "info records are below warning");
      const info = await runCli([
        "run",
        "--once",
        "--log-file",
        file,
        "--metrics-bind",
        "off",
        "--",
        ...serverArgv(runtime, `${ROOT}tests/fixtures/master/exit_code.ts`),
        "0",
      ]);
      assert.equal(info.code, 0);
      assert.match(
        readFileSync(file, "utf8"),
        /\[INF\] forklift\.arbiter: Program exited with code 0/,
      );
      assert.equal(info.stderr, "");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("forklift run on SIGUSR1 writes to a fresh file after logrotate moved the old one", async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-log-`);
    const file = `${dir}/master.log`;
    const port = await freePort();
    const m = new Master([
      "--log-file",
      file,
      "--metrics-bind",
      "off",
      "--",
      ...serverArgv(runtime, `${ROOT}tests/fixtures/master/app.ts`),
    ], { env: cleanEnv({ PORT: String(port) }) });
    try {
      await waitFor(
        "ready in the log file",
        () => existsSync(file) && /All 1 worker\(s\) ready/.test(readFileSync(file, "utf8")),
      );
      renameSync(file, `${file}.1`);
      m.signal("SIGUSR1");
      await waitFor("reopened", () => /Received SIGUSR1/.test(readFileSync(`${file}.1`, "utf8")));
      m.signal("SIGTTIN");
      await waitFor(
        "a record in the new file",
        () => existsSync(file) && /Workers: 2/.test(readFileSync(file, "utf8")),
      );
      assert.doesNotMatch(readFileSync(`${file}.1`, "utf8"), /Workers: 2/);
    } finally {
      await m.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
