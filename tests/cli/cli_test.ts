import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { cleanEnv, runCli } from "../_helpers/cli.ts";
import { VERSION } from "../../src/protocol/version.ts";

function withIni(text: string, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(`${tmpdir()}/forklift-cli-`);
  writeFileSync(`${dir}/forklift.ini`, text);
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

const INI = [
  "[forklift]",
  "workers = 2",
  "timeout = 11",
  "graceful_timeout = 12",
  "",
  "[forklift:production]",
  "timeout = 21",
  "graceful_timeout = 22",
  "max_requests = 23",
  "",
].join("\n");

function assertUsageError(
  r: { code: number | null; stderr: string; stdout: string },
  line: string,
) {
  assert.equal(r.code, 2, `exit code, stderr: ${r.stderr}`);
  assert.equal(r.stderr, `forklift: ${line}\n`);
  assert.equal(r.stdout, "");
}

describe("forklift config", () => {
  test("forklift config --origin shows all five layers", async () => {
    await withIni(INI, async (dir) => {
      const r = await runCli(
        ["config", "--origin", "-e", "production", "--max-requests", "43", "--workers", "4"],
        {
          cwd: dir,
          env: cleanEnv({ FORKLIFT_CONFIG_FILE: "forklift.ini", FORKLIFT_GRACEFUL_TIMEOUT: "32" }),
        },
      );
      assert.equal(r.code, 0, r.stderr);
      const rows = new Map(
        r.stdout.split("\n").filter((l) => l.includes(" = ")).map((l) => {
          const [name, rest] = l.split(" = ");
          const parts = rest.trim().split(/\s+/);
          return [name.trim(), parts] as const;
        }),
      );
      assert.deepEqual(rows.get("harvest_interval"), ["5", "default"]);
      assert.deepEqual(rows.get("timeout"), ["21", "file:[forklift:production]"]);
      assert.deepEqual(rows.get("graceful_timeout"), ["32", "env:FORKLIFT_GRACEFUL_TIMEOUT"]);
      assert.deepEqual(rows.get("max_requests"), ["43", "flag:--max-requests"]);
      assert.deepEqual(rows.get("workers"), ["4", "flag:--workers"]);
    });
  });

  test("forklift config --json prints value and origin per setting, secrets redacted", async () => {
    const r = await runCli(["config", "--json", "--otlp-header", "api-key=topsecret"], {
      env: cleanEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", WEB_CONCURRENCY: "3" }),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes("topsecret"));
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(doc.workers, { value: 3, origin: "env:WEB_CONCURRENCY" });
    assert.deepEqual(doc.otlp_headers, { value: "****", origin: "flag:--otlp-header" });
    assert.deepEqual(doc.otlp_endpoint, {
      value: "http://127.0.0.1:4318",
      origin: "env:OTEL_EXPORTER_OTLP_ENDPOINT",
    });
    assert.deepEqual(doc.metrics_bind, { value: "127.0.0.1:9464", origin: "default" });
  });

  test("forklift config redacts secrets in text output too", async () => {
    const r = await runCli(["config"], {
      env: cleanEnv({ OTEL_EXPORTER_OTLP_HEADERS: "k=hunter2" }),
    });
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^otlp_headers\s+= \*\*\*\*$/m);
    assert.ok(!r.stdout.includes("hunter2"));
  });
});

describe("forklift bad input", () => {
  test("forklift rejects a malformed INI line with exit 2 and one line", async () => {
    await withIni("[forklift]\nworkers 3\n", async (dir) => {
      const r = await runCli(["check", "-c", "forklift.ini"], { cwd: dir });
      assertUsageError(
        r,
        'Cannot parse forklift.ini line 2: expected "key = value" or "[section]"',
      );
    });
  });

  test("forklift rejects an unknown flag with a hint", async () => {
    const r = await runCli(["run", "--wokers", "3", "--", "deno", "run", "x.ts"]);
    assertUsageError(r, 'Unknown flag --wokers for "forklift run" (did you mean --workers?)');
  });

  test("forklift rejects an unknown FORKLIFT_* variable", async () => {
    const r = await runCli(["check"], { env: cleanEnv({ FORKLIFT_WOKERS: "3" }) });
    assertUsageError(
      r,
      "Unknown environment variable FORKLIFT_WOKERS (did you mean FORKLIFT_WORKERS?)",
    );
  });

  test("forklift rejects a bad value naming its source", async () => {
    await withIni("[forklift]\nworkers = -2\n", async (dir) => {
      const r = await runCli(["config", "-c", "forklift.ini"], { cwd: dir });
      assertUsageError(
        r,
        'Cannot read "workers" in forklift.ini line 2: expected a positive integer or "auto", got "-2"',
      );
    });
  });

  test("forklift rejects a missing config file and a missing environment section", async () => {
    const missing = await runCli(["config"], {
      env: cleanEnv({ FORKLIFT_CONFIG_FILE: "/no/such.ini" }),
    });
    assertUsageError(
      missing,
      "Cannot read config file /no/such.ini (from env:FORKLIFT_CONFIG_FILE): no such file",
    );
    await withIni(INI, async (dir) => {
      const r = await runCli(["config", "-c", "forklift.ini", "-e", "staging"], { cwd: dir });
      assertUsageError(
        r,
        'No [forklift:staging] section in forklift.ini for environment "staging"; it has [forklift:production]',
      );
    });
  });
});

describe("forklift help and version", () => {
  test("forklift --version prints the version", async () => {
    const r = await runCli(["--version"]);
    assert.equal(r.code, 0);
    assert.match(
      r.stdout,
      new RegExp(`^forklift ${VERSION.replaceAll(".", "\\.")} \\((deno|bun) `),
    );
  });

  test("forklift help run lists run's usage and every setting flag", async () => {
    const r = await runCli(["help", "run"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: forklift run/);
    assert.match(r.stdout, /--graceful-timeout SECONDS/);
    const headings = r.stdout.split("\n").filter((l) => /^[A-Z][a-z]+:$/.test(l));
    assert.deepEqual(headings, [...new Set(headings)], "a section heading twice");
    const unknown = await runCli(["help", "rnu"]);
    assertUsageError(unknown, 'No help for "rnu" (did you mean "run"?)');
  });

  test("forklift check validates and says so", async () => {
    const r = await runCli(["check", "-w", "2"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Configuration OK \(no config file; 2 worker\(s\)\)/);
  });
});
