import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { loadSettings } from "../../src/config/load.ts";
import { ConfigError } from "../../src/config/errors.ts";
import type { FlagValue } from "../../src/config/argv.ts";

function tempDir(): string {
  return mkdtempSync(`${tmpdir()}/forklift-load-`);
}

function withIni(text: string, fn: (dir: string) => void): void {
  const dir = tempDir();
  try {
    writeFileSync(`${dir}/forklift.ini`, text);
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function flags(entries: Record<string, string>): Map<string, FlagValue> {
  return new Map(Object.entries(entries).map(([k, raw]) => [k, { raw, flag: `--${k}` }]));
}

function assertConfigError(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    assert.equal(e.exitCode, 2);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    assert.ok(!e.message.includes("\n"), "message is one line");
    return true;
  });
}

const FIVE_LAYERS = [
  "[forklift]",
  "workers = 2",
  "timeout = 11",
  "graceful_timeout = 12",
  "max_requests = 13",
  "",
  "[forklift:production]",
  "timeout = 21",
  "graceful_timeout = 22",
  "max_requests = 23",
  "",
].join("\n");

describe("loadSettings()", () => {
  test("loadSettings() applies default < [forklift] < [forklift:ENV] < env < flags", () => {
    withIni(FIVE_LAYERS, (dir) => {
      const r = loadSettings({
        cwd: dir,
        config: "forklift.ini",
        environment: "production",
        env: { FORKLIFT_GRACEFUL_TIMEOUT: "32", FORKLIFT_MAX_REQUESTS: "33" },
        flags: flags({ max_requests: "43" }),
      });
      assert.equal(r.values.harvest_interval, 5);
      assert.equal(r.origins.harvest_interval, "default");
      assert.equal(r.values.workers, 2);
      assert.equal(r.origins.workers, "file:forklift.ini:2");
      assert.equal(r.values.timeout, 21);
      assert.equal(r.origins.timeout, "file:[forklift:production]");
      assert.equal(r.values.graceful_timeout, 32);
      assert.equal(r.origins.graceful_timeout, "env:FORKLIFT_GRACEFUL_TIMEOUT");
      assert.equal(r.values.max_requests, 43);
      assert.equal(r.origins.max_requests, "flag:--max_requests");
      assert.equal(r.file, "forklift.ini");
      assert.equal(r.environment, "production");
    });
  });

  test("loadSettings() reads the file from FORKLIFT_CONFIG_FILE and the section from FORKLIFT_ENVIRONMENT", () => {
    withIni(FIVE_LAYERS, (dir) => {
      const r = loadSettings({
        cwd: dir,
        env: { FORKLIFT_CONFIG_FILE: `${dir}/forklift.ini`, FORKLIFT_ENVIRONMENT: "production" },
      });
      assert.equal(r.values.timeout, 21);
      assert.equal(r.origins.workers, `file:${dir}/forklift.ini:2`);
    });
  });

  test("loadSettings() prefers -c and -e over their environment variables", () => {
    withIni(FIVE_LAYERS, (dir) => {
      const r = loadSettings({
        cwd: dir,
        config: "forklift.ini",
        environment: "production",
        env: { FORKLIFT_CONFIG_FILE: "/nonexistent.ini", FORKLIFT_ENVIRONMENT: "staging" },
      });
      assert.equal(r.values.max_requests, 23);
    });
  });

  test("loadSettings() ranks WEB_CONCURRENCY below FORKLIFT_WORKERS", () => {
    const low = loadSettings({ env: { WEB_CONCURRENCY: "3" } });
    assert.equal(low.values.workers, 3);
    assert.equal(low.origins.workers, "env:WEB_CONCURRENCY");
    const high = loadSettings({ env: { WEB_CONCURRENCY: "3", FORKLIFT_WORKERS: "5" } });
    assert.equal(high.values.workers, 5);
    assert.equal(high.origins.workers, "env:FORKLIFT_WORKERS");
  });

  test("loadSettings() reads the OTEL_* variables, with the export interval in milliseconds", () => {
    const r = loadSettings({
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/",
        OTEL_EXPORTER_OTLP_HEADERS: "api-key=s%3Dcret,x-team=web",
        OTEL_METRIC_EXPORT_INTERVAL: "15000",
        OTEL_SERVICE_NAME: "shop",
      },
    });
    assert.equal(r.values.otlp_endpoint, "http://collector:4318");
    assert.deepEqual(r.values.otlp_headers, { "api-key": "s=cret", "x-team": "web" });
    assert.equal(r.values.export_interval, 15);
    assert.equal(r.values.service_name, "shop");
    assert.equal(r.origins.export_interval, "env:OTEL_METRIC_EXPORT_INTERVAL");
  });

  test("loadSettings() reads fractional OTEL_* milliseconds as milliseconds", () => {
    const r = loadSettings({
      env: { OTEL_METRIC_EXPORT_INTERVAL: "1500.5", OTEL_EXPORTER_OTLP_TIMEOUT: "250.25" },
    });
    assert.equal(r.values.export_interval, 1.5005);
    assert.equal(r.config.exportIntervalMs, 1501);
    assert.equal(r.values.otlp_timeout, 0.25025);
    const m = loadSettings({ env: { OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: "0.5" } });
    assert.equal(m.values.otlp_timeout, 0.0005);
  });

  test("loadSettings() resolves workers = auto to the CPU count", () => {
    withIni("[forklift]\nworkers = auto\n", (dir) => {
      const r = loadSettings({ cwd: dir, config: "forklift.ini", cpuCount: 6 });
      assert.equal(r.values.workers, 6);
    });
    assert.equal(
      loadSettings({ flags: flags({ workers: "AUTO" }), cpuCount: 3 }).values.workers,
      3,
    );
  });

  test("loadSettings() treats empty environment variables as unset", () => {
    const r = loadSettings({ env: { FORKLIFT_WORKERS: "", OTEL_SERVICE_NAME: " " } });
    assert.equal(r.origins.workers, "default");
    assert.equal(r.values.service_name, null);
  });

  test("loadSettings() accumulates repeated --otlp-header flags", () => {
    const r = loadSettings({
      flags: new Map([["otlp_headers", { raw: "a=1,b=2", flag: "--otlp-header" }]]),
    });
    assert.deepEqual(r.values.otlp_headers, { a: "1", b: "2" });
  });

  test("loadSettings() rejects a malformed INI line with its file and line", () => {
    withIni("[forklift]\nworkers 3\n", (dir) => {
      assertConfigError(
        () => loadSettings({ cwd: dir, config: "forklift.ini" }),
        'Cannot parse forklift.ini line 2: expected "key = value" or "[section]"',
      );
    });
  });

  test("loadSettings() rejects an unknown INI key with a did-you-mean hint", () => {
    withIni("[forklift]\n\nwokers = 3\n", (dir) => {
      assertConfigError(
        () => loadSettings({ cwd: dir, config: "forklift.ini" }),
        'Unknown setting "wokers" in forklift.ini line 3 (did you mean "workers"?)',
      );
    });
  });

  test("loadSettings() rejects an unknown key even in an unused [forklift:ENV] section", () => {
    withIni("[forklift:staging]\nfoo = 1\n", (dir) => {
      assertConfigError(
        () => loadSettings({ cwd: dir, config: "forklift.ini" }),
        'Unknown setting "foo" in forklift.ini line 2',
      );
    });
  });

  test("loadSettings() rejects a misspelled forklift section with a hint, as it does keys", () => {
    const cases: Array<[string, string]> = [
      ["[forklfit]", "[forklift]"],
      ["[Forklift]", "[forklift]"],
      ["[forklfit:prod]", "[forklift:prod]"],
      ["[forklift.production]", "[forklift:production]"],
      ["[forklift production]", "[forklift:production]"],
      ["[frklift-staging]", "[forklift:staging]"],
    ];
    for (const [header, meant] of cases) {
      withIni(`[forklift]\nworkers = 2\n\n${header}\nworkers = 8\n`, (dir) => {
        assertConfigError(
          () => loadSettings({ cwd: dir, config: "forklift.ini" }),
          `Unknown section ${header} in forklift.ini line 4 (did you mean ${meant}?)`,
        );
      });
    }
    // A misspelled environment name is a name like any other; -e names the one to use.
    withIni("[forklift:prodction]\nworkers = 8\n", (dir) => {
      assert.equal(loadSettings({ cwd: dir, config: "forklift.ini" }).values.workers, 1);
    });
  });

  test("loadSettings() ignores sections that are not forklift's", () => {
    withIni("[app]\ncolour = blue\n[fork]\n[uplift]\n[forklift]\nworkers = 2\n", (dir) => {
      assert.equal(loadSettings({ cwd: dir, config: "forklift.ini" }).values.workers, 2);
    });
  });

  test("loadSettings() rejects an unknown FORKLIFT_* variable with a hint", () => {
    assertConfigError(
      () => loadSettings({ env: { FORKLIFT_WOKERS: "3" } }),
      "Unknown environment variable FORKLIFT_WOKERS (did you mean FORKLIFT_WORKERS?)",
    );
    assertConfigError(
      () => loadSettings({ env: { FORKLIFT_COLOUR: "blue" } }),
      "Unknown environment variable FORKLIFT_COLOUR",
    );
  });

  test("loadSettings() accepts the variables the master sets for its workers", () => {
    const r = loadSettings({
      env: { FORKLIFT_WORKER_ID: "1", FORKLIFT_WORKERS: "2", FORKLIFT_MASTER_PID: "10" },
    });
    assert.equal(r.values.workers, 2);
  });

  test("loadSettings() rejects a negative worker count in the INI file", () => {
    withIni("[forklift]\nworkers = -2\n", (dir) => {
      assertConfigError(
        () => loadSettings({ cwd: dir, config: "forklift.ini" }),
        'Cannot read "workers" in forklift.ini line 2: expected a positive integer or "auto", got "-2"',
      );
    });
  });

  test("loadSettings() rejects a timeout that is not a number, naming the variable", () => {
    assertConfigError(
      () => loadSettings({ env: { FORKLIFT_TIMEOUT: "soon" } }),
      'Cannot read "timeout" from env FORKLIFT_TIMEOUT: expected a number of seconds (0 = off), got "soon"',
    );
  });

  test("loadSettings() trims an endpoint's trailing slashes, never a query's", () => {
    const r = loadSettings({
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318/otlp//",
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "http://c:4318/m?path=/a/",
      },
    });
    assert.equal(r.values.otlp_endpoint, "http://c:4318/otlp");
    assert.equal(r.values.otlp_metrics_endpoint, "http://c:4318/m?path=/a/");
  });

  test("loadSettings() refuses any duration longer than a timer can wait, in one line", () => {
    // 2^31-1 ms is 2147483.647 s: one second more and setTimeout fires at once.
    assertConfigError(
      () => loadSettings({ env: { OTEL_METRIC_EXPORT_INTERVAL: "2147484000" } }),
      'Cannot read "export_interval" from env OTEL_METRIC_EXPORT_INTERVAL: expected a positive number of seconds, got "2147484": longer than the 2147483 seconds (24.8 days) a timer can wait',
    );
    for (const name of ["timeout", "graceful_timeout", "harvest_interval", "otlp_timeout"]) {
      assertConfigError(
        () => loadSettings({ flags: flags({ [name]: "2147484" }) }),
        new RegExp(`^Cannot read "${name}" .*a timer can wait$`),
      );
    }
    const longest = loadSettings({ flags: flags({ export_interval: "2147483" }) });
    assert.equal(longest.values.export_interval, 2_147_483);
  });

  test("loadSettings() reads max_memory as bytes from a binary K, M or G size, in each source", () => {
    const MIB = 1024 * 1024;
    assert.equal(loadSettings({ env: {} }).config.maxMemory, 0);
    assert.equal(
      loadSettings({ flags: flags({ max_memory: "512M" }) }).config.maxMemory,
      512 * MIB,
    );
    assert.equal(
      loadSettings({ env: { FORKLIFT_MAX_MEMORY: "1.5G" } }).config.maxMemory,
      1536 * MIB,
    );
    withIni("[forklift]\nmax_memory = 300mib\n", (dir) => {
      const r = loadSettings({ cwd: dir, config: "forklift.ini" });
      assert.equal(r.config.maxMemory, 300 * MIB);
    });
    assert.equal(loadSettings({ flags: flags({ max_memory: "2048k" }) }).config.maxMemory, 2 * MIB);
    assert.equal(loadSettings({ flags: flags({ max_memory: "0" }) }).config.maxMemory, 0);
  });

  test("loadSettings() rejects a max_memory that is not a size, in one line naming the variable", () => {
    for (const bad of ["lots", "-5M", "512T", "1e9"]) {
      assertConfigError(
        () => loadSettings({ env: { FORKLIFT_MAX_MEMORY: bad } }),
        `Cannot read "max_memory" from env FORKLIFT_MAX_MEMORY: expected a size in bytes with an optional K, M or G suffix, such as 512M (0 = off), got "${bad}"`,
      );
    }
  });

  test("loadSettings() rejects a metrics_bind that is not HOST:PORT, naming the flag", () => {
    assertConfigError(
      () =>
        loadSettings({
          flags: new Map([["metrics_bind", { raw: "nowhere", flag: "--metrics-bind" }]]),
        }),
      'Cannot read "metrics_bind" from flag --metrics-bind: expected HOST:PORT or "off", got "nowhere"',
    );
  });

  test("loadSettings() never shows a secret's raw value in an error", () => {
    assertConfigError(
      () => loadSettings({ env: { OTEL_EXPORTER_OTLP_HEADERS: "no equals sign" } }),
      'Cannot read "otlp_headers" from env OTEL_EXPORTER_OTLP_HEADERS: expected KEY=VALUE pairs separated by commas, got ****',
    );
  });

  test("loadSettings() rejects a missing config file", () => {
    const dir = tempDir();
    try {
      assertConfigError(
        () => loadSettings({ cwd: dir, config: "missing.ini" }),
        "Cannot read config file missing.ini (from -c/--config): no such file",
      );
      assertConfigError(
        () => loadSettings({ cwd: dir, env: { FORKLIFT_CONFIG_FILE: "missing.ini" } }),
        "Cannot read config file missing.ini (from env:FORKLIFT_CONFIG_FILE): no such file",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("loadSettings() rejects a directory given as config file", () => {
    const dir = tempDir();
    try {
      mkdirSync(`${dir}/conf.d`);
      assertConfigError(
        () => loadSettings({ cwd: dir, config: "conf.d" }),
        "Cannot read config file conf.d (from -c/--config): it is a directory",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("loadSettings() rejects an environment without its [forklift:ENV] section", () => {
    withIni(FIVE_LAYERS, (dir) => {
      assertConfigError(
        () => loadSettings({ cwd: dir, config: "forklift.ini", environment: "staging" }),
        'No [forklift:staging] section in forklift.ini for environment "staging"; it has [forklift:production]',
      );
    });
  });

  test("loadSettings() names the section of a bad value in [forklift:ENV]", () => {
    withIni("[forklift:production]\ntimeout = soon\n", (dir) => {
      assertConfigError(
        () => loadSettings({ cwd: dir, config: "forklift.ini", environment: "production" }),
        /^Cannot read "timeout" in forklift.ini line 2 \[forklift:production\]: /,
      );
    });
  });
});

describe("loadSettings() and the environment forklift itself sets", () => {
  test("loadSettings() accepts every worker variable, so forklift can run inside a worker", () => {
    const r = loadSettings({
      env: {
        FORKLIFT_MASTER_PID: "1",
        FORKLIFT_WORKER_ID: "1",
        FORKLIFT_WORKERS: "2",
        FORKLIFT_CHANNEL: "/run/forklift-1.sock",
        FORKLIFT_CHANNEL_TOKEN: "t",
      },
    });
    assert.equal(r.values.workers, 2);
  });

  test("loadSettings() refuses an environment name with no config file to hold its section", () => {
    assert.throws(
      () => loadSettings({ environment: "prod" }),
      (e: Error) =>
        e instanceof ConfigError &&
        e.message ===
          'Environment "prod" (from -e/--environment) names a [forklift:prod] section, but no config file is given (-c/--config or FORKLIFT_CONFIG_FILE)',
    );
    assert.throws(
      () => loadSettings({ env: { FORKLIFT_ENVIRONMENT: "prod" } }),
      /env:FORKLIFT_ENVIRONMENT/,
    );
  });
});
