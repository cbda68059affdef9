import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { cleanEnv, ROOT, runCli } from "../_helpers/cli.ts";
import { freePort, Master, RUNTIMES, serverArgv, waitFor } from "../_helpers/master.ts";
import { testRuntime } from "../_helpers/runtime.ts";

const APP = `${ROOT}tests/fixtures/master/app.ts`;
const runtime = testRuntime();

// Secrets with a marker a log line or a printed setting would show.
const TOKEN = "tok_S3CRET_a1b2c3d4e5f6";
const USER = "scraper";
const PASSWORD = "pw:S3CRET:9z8y7x";
const BASIC = `${USER}:${PASSWORD}`;
const basic = (text: string) => `Basic ${Buffer.from(text).toString("base64")}`;

/** Paths that answer 401 without the credential, and what each answers with it. */
const GUARDED: Array<[path: string, status: number]> = [
  ["/", 200],
  ["/metrics", 200],
  ["/status", 200],
  ["/dashboard.json", 200],
  ["/no-such-page", 404],
];

/** Starts a one-worker master and waits, sending `authorization`, until its worker is ready. */
async function startMaster(
  args: string[],
  options: { env?: Record<string, string>; authorization?: string } = {},
): Promise<Master> {
  const port = await freePort();
  const m = new Master(
    ["-w", "1", "--harvest-interval", "0.3", ...args, "--", ...serverArgv(runtime, APP)],
    { env: cleanEnv({ PORT: String(port), ...options.env }), deadlineMs: 50_000 },
  );
  try {
    await m.waitLog(/Serving metrics at/);
    await waitFor("a ready worker", async () => {
      const res = await get(m, "/status", options.authorization);
      if (res.status !== 200) {
        await res.body?.cancel();
        return false;
      }
      const doc = await res.json();
      for (const w of doc.workers) if (typeof w.pid === "number") m.workerPids.add(w.pid);
      return doc.workers.length === 1 && doc.workers[0].state === "ready";
    }, 15_000);
  } catch (e) {
    await m.cleanup();
    throw e;
  }
  return m;
}

function get(m: Master, path: string, authorization?: string): Promise<Response> {
  return fetch(`http://127.0.0.1:${m.metricsPort}${path}`, {
    headers: authorization === undefined ? {} : { authorization },
    signal: AbortSignal.timeout(5_000),
  });
}

/** Asserts every guarded path refuses `refused` and answers `admitted`; the probes stay open. */
async function assertGuarded(
  m: Master,
  admitted: string,
  refused: Array<string | undefined>,
  challenge: RegExp,
): Promise<void> {
  for (const [path, status] of GUARDED) {
    for (const authorization of refused) {
      const res = await get(m, path, authorization);
      const body = await res.text();
      const what = `${path} with ${authorization ?? "no credential"}`;
      assert.equal(res.status, 401, what);
      assert.match(res.headers.get("www-authenticate") ?? "", challenge, what);
      assert.equal(body, "Unauthorized\n", what);
    }
    const res = await get(m, path, admitted);
    const body = await res.text();
    assert.equal(res.status, status, `${path} with the credential: ${body}`);
    if (path === "/metrics") assert.match(body, /^forklift_workers 1$/m);
  }
  for (const path of ["/ready", "/live"]) {
    const res = await get(m, path);
    await res.body?.cancel();
    assert.equal(res.status, 200, `${path} without a credential`);
  }
}

/** Asserts no secret shows in what the master printed. */
function assertNoSecret(m: Master): void {
  for (const secret of [TOKEN, PASSWORD, "S3CRET", Buffer.from(BASIC).toString("base64")]) {
    assert.ok(!m.stderr.includes(secret) && !m.stdout.includes(secret), `${secret} in the log`);
  }
}

const EXPOSED = /is not on loopback and asks for no credential/;

describe(`forklift run with a metrics credential (${runtime} master and worker)`, {
  skip: !RUNTIMES[runtime],
}, () => {
  test("forklift run with metrics_token answers 401 without the bearer token, 200 with it, and does not warn on 0.0.0.0", async () => {
    const m = await startMaster(["--metrics-bind", "0.0.0.0:0", "--log-level", "debug"], {
      env: { FORKLIFT_METRICS_TOKEN: TOKEN },
      authorization: `Bearer ${TOKEN}`,
    });
    try {
      await assertGuarded(
        m,
        `Bearer ${TOKEN}`,
        [undefined, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, basic(TOKEN)],
        /^Bearer realm="forklift"$/,
      );
      assert.doesNotMatch(m.stderr, EXPOSED);
      // The token is the master's: the app, and whatever it runs, does not see it.
      const status = await (await get(m, "/status", `Bearer ${TOKEN}`)).json();
      const seen = await fetch(`http://${status.workers[0].addr}/env?name=FORKLIFT_METRICS_TOKEN`);
      assert.equal(await seen.text(), "");
    } finally {
      await m.cleanup();
    }
    assertNoSecret(m);
  });

  test("forklift run with metrics_basic_auth from the INI file answers 401 without it, 200 with it", async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-auth-`);
    try {
      writeFileSync(`${dir}/forklift.ini`, `[forklift]\nmetrics_basic_auth = ${BASIC}\n`);
      const m = await startMaster(
        ["-c", `${dir}/forklift.ini`, "--metrics-bind", "127.0.0.1:0", "--log-level", "debug"],
        { authorization: basic(BASIC) },
      );
      try {
        await assertGuarded(
          m,
          basic(BASIC),
          [undefined, basic(`${USER}:${PASSWORD}x`), basic(`x${BASIC}`), `Bearer ${BASIC}`],
          /^Basic realm="forklift", charset="UTF-8"$/,
        );
        // forklift status reads the same settings, from the same file, and sends them.
        const bind = ["--metrics-bind", `127.0.0.1:${m.metricsPort}`];
        const ok = await runCli(["status", "-c", `${dir}/forklift.ini`, ...bind]);
        assert.equal(ok.code, 0, ok.stderr);
        assert.match(ok.stdout, new RegExp(`master pid ${m.pid}`));
        const json = await runCli(["status", "--json", ...bind], {
          env: cleanEnv({ FORKLIFT_METRICS_BASIC_AUTH: BASIC }),
        });
        assert.equal(json.code, 0, json.stderr);
        assert.equal(JSON.parse(json.stdout).pid, m.pid);
        const none = await runCli(["status", ...bind]);
        assert.equal(none.code, 1);
        assert.match(none.stderr, /asks for a credential: set metrics_token or metrics_basic_auth/);
        const wrong = await runCli(["status", ...bind], {
          env: cleanEnv({ FORKLIFT_METRICS_BASIC_AUTH: `${USER}:nope` }),
        });
        assert.equal(wrong.code, 1);
        assert.match(wrong.stderr, /refused the credential sent/);
        for (const r of [ok, json, none, wrong]) {
          assert.ok(!`${r.stdout}${r.stderr}`.includes(PASSWORD), "the secret was printed");
        }
      } finally {
        await m.cleanup();
      }
      assertNoSecret(m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("forklift run warns once at start for a metrics_bind beyond loopback without a credential", async () => {
    const m = await startMaster(["--metrics-bind", "0.0.0.0:0"]);
    try {
      const lines = m.stderr.split("\n").filter((l) => EXPOSED.test(l));
      assert.equal(lines.length, 1, m.stderr);
      assert.match(lines[0], /WRN|warn/i);
      assert.match(lines[0], /0\.0\.0\.0:0 .*set metrics_token or metrics_basic_auth/);
      const open = await get(m, "/metrics");
      await open.body?.cancel();
      assert.equal(open.status, 200, "an endpoint with no credential set stays open");
    } finally {
      await m.cleanup();
    }
  });

  test("forklift config prints metrics_token and metrics_basic_auth as **** from flags, env and file", async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-auth-`);
    try {
      writeFileSync(`${dir}/forklift.ini`, `[forklift]\nmetrics_basic_auth = ${BASIC}\n`);
      const runs = [
        await runCli(["config", "--metrics-token", TOKEN, "--metrics-basic-auth", BASIC]),
        await runCli(["config", "--json"], {
          env: cleanEnv({ FORKLIFT_METRICS_TOKEN: TOKEN, FORKLIFT_METRICS_BASIC_AUTH: BASIC }),
        }),
        await runCli(["config", "--origin", "-c", `${dir}/forklift.ini`]),
      ];
      for (const r of runs) {
        assert.equal(r.code, 0, r.stderr);
        assert.ok(!r.stdout.includes("S3CRET") && !r.stderr.includes("S3CRET"), r.stdout);
      }
      assert.match(runs[0].stdout, /^metrics_token +=  ?\*\*\*\*\s*$/m);
      assert.match(runs[0].stdout, /^metrics_basic_auth +=  ?\*\*\*\*\s*$/m);
      const json = JSON.parse(runs[1].stdout);
      assert.deepEqual(json.metrics_token, { value: "****", origin: "env:FORKLIFT_METRICS_TOKEN" });
      assert.equal(json.metrics_basic_auth.value, "****");
      assert.match(runs[2].stdout, /^metrics_basic_auth +=  ?\*\*\*\* +file:.*forklift\.ini/m);
      const bad = await runCli(["config", "--metrics-basic-auth", "S3CRET-without-colon"]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /Cannot read "metrics_basic_auth" .*got \*\*\*\*/);
      assert.ok(!bad.stderr.includes("S3CRET"), bad.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Whether a real Prometheus server can run here. */
const PROMETHEUS = spawnSync("prometheus", ["--version"], { stdio: "ignore" }).status === 0;

describe("Prometheus scraping a guarded forklift master", {
  skip: !RUNTIMES[runtime] || (!PROMETHEUS && !process.env.CI &&
    "prometheus is not installed (Debian package prometheus; .ci/run installs it)"),
}, () => {
  let m: Master;
  let prometheus: ChildProcess | undefined;
  let dir: string;
  let api: string;
  let said = "";

  before(async () => {
    dir = mkdtempSync(`${tmpdir()}/forklift-prometheus-`);
    m = await startMaster(
      ["--metrics-bind", "127.0.0.1:0", "--metrics-token", TOKEN, "--metrics-basic-auth", BASIC],
      { authorization: `Bearer ${TOKEN}` },
    );
    const target = `["127.0.0.1:${m.metricsPort}"]`;
    // One job per way of asking: two with a right credential, two without.
    writeFileSync(
      `${dir}/prometheus.yml`,
      [
        "global: {scrape_interval: 1s, scrape_timeout: 1s}",
        "scrape_configs:",
        `  - {job_name: bearer, authorization: {type: Bearer, credentials: "${TOKEN}"}, static_configs: [{targets: ${target}}]}`,
        `  - {job_name: basic, basic_auth: {username: "${USER}", password: "${PASSWORD}"}, static_configs: [{targets: ${target}}]}`,
        `  - {job_name: wrong, authorization: {credentials: "${TOKEN}x"}, static_configs: [{targets: ${target}}]}`,
        `  - {job_name: none, static_configs: [{targets: ${target}}]}`,
        "",
      ].join("\n"),
    );
    const port = await freePort();
    api = `http://127.0.0.1:${port}/api/v1`;
    prometheus = spawn("prometheus", [
      `--config.file=${dir}/prometheus.yml`,
      `--storage.tsdb.path=${dir}/data`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ], { stdio: ["ignore", "ignore", "pipe"] });
    prometheus.stderr!.on("data", (d) => said += d);
    prometheus.on("error", (e) => said += `cannot start prometheus: ${e.message}`);
  });

  after(async () => {
    if (prometheus?.pid !== undefined && prometheus.exitCode === null) {
      const gone = new Promise((resolve) => prometheus!.on("close", resolve));
      process.kill(prometheus.pid, "SIGKILL");
      await gone;
    }
    await m?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test("forklift run's guarded /metrics is scraped by Prometheus with authorization and basic_auth, and refused without", async () => {
    type Target = { labels: { job: string }; health: string; lastError: string };
    const targets = await waitFor(
      "every job scraped once",
      async () => {
        if (prometheus?.exitCode !== null || said.startsWith("cannot")) {
          throw new Error(`prometheus is not running: ${said}`);
        }
        const doc = await (await fetch(`${api}/targets`)).json();
        const active: Target[] = doc.data.activeTargets;
        return active.length === 4 && active.every((t) => t.health !== "unknown")
          ? active
          : undefined;
      },
      20_000,
      250,
    );
    const health = Object.fromEntries(targets.map((t) => [t.labels.job, t]));
    assert.equal(health.bearer.health, "up", health.bearer.lastError);
    assert.equal(health.basic.health, "up", health.basic.lastError);
    assert.equal(health.wrong.health, "down");
    assert.match(health.wrong.lastError, /401/);
    assert.equal(health.none.health, "down");
    assert.match(health.none.lastError, /401/);
    // The samples themselves arrived, not only a 200.
    const query = await (await fetch(`${api}/query?query=forklift_workers`)).json();
    const jobs = query.data.result.map((r: { metric: { job: string } }) => r.metric.job).sort();
    assert.deepEqual(jobs, ["basic", "bearer"]);
    for (const r of query.data.result) assert.equal(r.value[1], "1");
    assertNoSecret(m);
  });
});
