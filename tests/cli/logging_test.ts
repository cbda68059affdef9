import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { ROOT, runCli } from "../_helpers/cli.ts";
import { RUNTIMES, serverArgv } from "../_helpers/master.ts";

const PRINT = `${ROOT}tests/fixtures/master/print.ts`;
const runtime = RUNTIMES.bun ? "bun" : "deno";

describe("forklift logging", { skip: !RUNTIMES.bun && !RUNTIMES.deno }, () => {
  test("setupLogging() writes one JSON object per line, worker output wrapped too", async () => {
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
  });

  test("setupLogging() appends to log_file and honours log_level", async () => {
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
});
