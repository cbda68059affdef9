import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { cleanEnv, ROOT, runProcess, runtimeArgv } from "./_helpers/cli.ts";
import { getFresh, RUNTIMES, startWorkers, sumSamples, waitFor } from "./_helpers/master.ts";
import { VERSION } from "../src/protocol/version.ts";

const npmFound = spawnSync("npm", ["--version"], { encoding: "utf8" }).status === 0;
const SKIP = !RUNTIMES.bun
  ? "needs bun to build the binary"
  : !npmFound && !process.env.CI
  ? "npm is not installed"
  : false;

test("package metadata: npm/package.json and deno.json carry forklift's version and exports", () => {
  const npm = JSON.parse(readFileSync(`${ROOT}npm/package.json`, "utf8"));
  const jsr = JSON.parse(readFileSync(`${ROOT}deno.json`, "utf8"));
  assert.equal(npm.version, VERSION);
  assert.equal(jsr.version, VERSION);
  assert.deepEqual(npm.exports["."], { types: "./mod.d.ts", default: "./mod.js" });
  assert.deepEqual(jsr.exports, { ".": "./mod.ts" });
  assert.match(jsr.name, /^@[a-z0-9-]+\/[a-z0-9-]+$/);
});

test("deno publish --dry-run takes every module the package's exports import", {
  skip: RUNTIMES.deno ? false : "needs deno",
}, async () => {
  const r = await runProcess([RUNTIMES.deno!, "publish", "--dry-run", "--allow-dirty"], {
    timeoutMs: 60_000,
  });
  assert.doesNotMatch(r.stderr + r.stdout, /excluded-module/);
  assert.equal(r.code, 0, r.stderr);
});

describe("the packed API in fresh apps under the binary", { skip: SKIP }, () => {
  let dir = "";
  let tarball = "";
  let bin = "";

  before(async () => {
    dir = mkdtempSync(`${tmpdir()}/forklift-package-`);
    const env = cleanEnv({ FORKLIFT_TEST_BUN: RUNTIMES.bun! });
    const packed = await runProcess([...runtimeArgv(`${ROOT}scripts/pack.ts`), "--out", dir], {
      env,
      timeoutMs: 120_000,
    });
    assert.equal(packed.code, 0, packed.stderr);
    tarball = packed.stdout.trim().split("\n").pop()!;
    bin = `${dir}/forklift`;
    const built = await runProcess([...runtimeArgv(`${ROOT}scripts/build.ts`), "--outfile", bin], {
      env,
      timeoutMs: 120_000,
    });
    assert.equal(built.code, 0, built.stderr);
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A new project holding `fixture` as its server and the tarball as a dependency. */
  async function freshApp(runtime: "deno" | "bun"): Promise<string> {
    const app = `${dir}/${runtime}-app`;
    mkdirSync(app);
    writeFileSync(
      `${app}/package.json`,
      JSON.stringify({ name: `${runtime}-app`, private: true, type: "module" }),
    );
    // What each runtime's users type: bun add, or npm install beside a Deno app.
    const install = runtime === "bun"
      ? [RUNTIMES.bun!, "add", tarball]
      : ["npm", "install", "--no-audit", "--no-fund", tarball];
    const installed = await runProcess(install, { cwd: app, timeoutMs: 120_000 });
    assert.equal(installed.code, 0, installed.stderr);
    // A second copy of the package, as a dependency bundling its own would bring.
    mkdirSync(`${app}/vendor`);
    cpSync(`${app}/node_modules/forklift`, `${app}/vendor/forklift`, { recursive: true });
    const source = readFileSync(`${ROOT}tests/fixtures/package/${runtime}_app.ts`, "utf8")
      .replace(/from "\.\.\/\.\.\/\.\.\/mod\.ts"; \/\/ copy/, 'from "./vendor/forklift/mod.js";')
      .replace(/from "\.\.\/\.\.\/\.\.\/mod\.ts"/, 'from "forklift"');
    writeFileSync(`${app}/server.ts`, source);
    return app;
  }

  test("npm pack tarball in a Deno app without npm: unpacked and named in deno.json's imports", {
    skip: RUNTIMES.deno ? false : "needs deno",
  }, async () => {
    // As the README tells Deno users before the package is published.
    const app = `${dir}/deno-vendored`;
    mkdirSync(`${app}/vendor`, { recursive: true });
    const unpacked = await runProcess(["tar", "-xzf", tarball, "-C", `${app}/vendor`]);
    assert.equal(unpacked.code, 0, unpacked.stderr);
    renameSync(`${app}/vendor/package`, `${app}/vendor/forklift`);
    writeFileSync(
      `${app}/deno.json`,
      JSON.stringify({ imports: { forklift: "./vendor/forklift/mod.js" } }),
    );
    writeFileSync(
      `${app}/main.ts`,
      'import { counter, type Counter } from "forklift";\n' +
        'const c: Counter = counter("app.vendored");\n' +
        "c.add(1);\n" +
        'console.log("recorded");\n',
    );
    const checked = await runProcess([RUNTIMES.deno!, "check", "main.ts"], {
      cwd: app,
      timeoutMs: 60_000,
    });
    assert.equal(checked.code, 0, checked.stderr);
    const ran = await runProcess([RUNTIMES.deno!, "run", "main.ts"], {
      cwd: app,
      timeoutMs: 30_000,
    });
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout.trim(), "recorded");
  });

  for (const runtime of ["bun", "deno"] as const) {
    test(
      `npm pack tarball in a fresh ${runtime} app: its counters reach /metrics, one reporter per process`,
      {
        skip: RUNTIMES[runtime] ? false : `needs ${runtime}`,
      },
      async () => {
        const app = await freshApp(runtime);
        if (runtime === "deno") {
          // The declarations type-check a user's code against the package.
          writeFileSync(
            `${app}/typed.ts`,
            'import { counter, type Counter } from "forklift";\n' +
              'const c: Counter = counter("app.typed");\n' +
              "// @ts-expect-error a string is not a number\n" +
              'c.add("1");\n',
          );
          const checked = await runProcess([RUNTIMES.deno!, "check", "typed.ts"], {
            cwd: app,
            timeoutMs: 60_000,
          });
          assert.equal(checked.code, 0, checked.stderr);
        }
        const { master, port } = await startWorkers(runtime, `${app}/server.ts`, {
          forklift: [bin],
          cwd: app,
        });
        try {
          const orders = 12;
          for (let i = 0; i < orders; i++) {
            assert.equal((await getFresh(port, "/order"))?.status, 200);
          }
          const res = await getFresh(port, "/stats");
          const { api, copy } = JSON.parse(res!.body);
          // Both copies of the package reach the reporter the binary injected.
          assert.equal(api.handshake, "welcomed");
          assert.deepEqual(copy, api);
          assert.equal(api.timersArmed, 1);
          await waitFor("counts", async () => {
            const text = await master.metrics();
            return sumSamples(text, 'app_orders_total{plan="pro"}') === orders &&
              sumSamples(text, 'app_orders_total{plan="copy"}') === orders &&
              sumSamples(text, "app_basket_size_count") === orders &&
              sumSamples(text, "http_server_request_duration_seconds_count") === orders + 1;
          }, 5_000);
          assert.doesNotMatch(master.stderr, /\[(WRN|ERR)\](?!.*tcp_migrate_req)/);
          master.signal("SIGTERM");
          assert.deepEqual(await master.exited, { code: 0, signal: null });
        } finally {
          await master.cleanup();
        }
      },
    );
  }
});
