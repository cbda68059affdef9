import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname } from "node:path";
import { cleanEnv, ROOT, runProcess, runtimeArgv } from "./_helpers/cli.ts";
import { createServer } from "node:net";
import {
  getFresh,
  Master,
  RUNTIMES,
  serverArgv,
  startWorkers,
  sumSamples,
  waitFor,
} from "./_helpers/master.ts";

describe("the forklift binary", { skip: RUNTIMES.bun ? false : "needs bun to build it" }, () => {
  let dir = "";
  let bin = "";

  before(() => {
    dir = mkdtempSync(`${tmpdir()}/forklift-build-`);
    bin = `${dir}/forklift`;
    const [cmd, ...pre] = runtimeArgv(`${ROOT}scripts/build.ts`);
    const built = spawnSync(cmd, [...pre, "--outfile", bin], {
      cwd: ROOT,
      env: { ...process.env, FORKLIFT_TEST_BUN: RUNTIMES.bun! },
      encoding: "utf8",
      timeout: 120_000,
    });
    assert.equal(built.status, 0, built.stderr);
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("build.ts makes one binary that writes its embedded reporter where only it can write", async () => {
    const cache = `${dir}/cache`;
    const env = cleanEnv({ XDG_RUNTIME_DIR: cache });
    const dry = await runProcess([bin, "run", "--dry-run", "--", RUNTIMES.bun!, "app.ts"], {
      env,
    });
    assert.equal(dry.code, 0, dry.stderr);
    const preload = /BUN_OPTIONS='?--preload=([^'\s]+)/.exec(dry.stdout)?.[1];
    assert.ok(preload?.startsWith(`${cache}/forklift-`), dry.stdout);
    assert.ok(existsSync(preload!));
    assert.match(readFileSync(preload!, "utf8"), /forklift\.reporter/);
    // Bun's build of the preload comes with its bytecode, whole.
    assert.equal(
      readFileSync(`${preload}.jsc`).length,
      readFileSync(`${ROOT}dist/bun/preload.js.jsc`).length,
    );

    // The preload's directory name is predictable. One made first by another
    // user (here: owned by nobody, writable by all) is never used, nor a file in it.
    const owned = dirname(preload!);
    rmSync(owned, { recursive: true, force: true });
    mkdirSync(owned, { mode: 0o777 });
    chmodSync(owned, 0o777);
    writeFileSync(`${owned}/preload.bun.js`, "globalThis.planted = true;\n");
    try {
      chownSync(owned, 65534, 65534);
    } catch {
      // Not root: the mode alone makes it another's to write.
    }
    const planted = await runProcess([bin, "run", "--dry-run", "--", RUNTIMES.bun!, "app.ts"], {
      env,
    });
    const elsewhere = /BUN_OPTIONS='?--preload=([^'\s]+)/.exec(planted.stdout)?.[1];
    assert.ok(elsewhere && dirname(elsewhere) !== owned, planted.stdout);
    assert.match(readFileSync(elsewhere!, "utf8"), /forklift\.reporter/);
    assert.equal((statSync(dirname(elsewhere!)).mode & 0o777).toString(8), "700");
    // In its own private directory, a file that is not the one the binary carries is replaced.
    rmSync(owned, { recursive: true, force: true });
    assert.equal(
      (await runProcess([bin, "run", "--dry-run", "--", RUNTIMES.bun!, "app.ts"], { env })).code,
      0,
    );
    writeFileSync(preload!, "globalThis.tampered = true;\n");
    await runProcess([bin, "run", "--dry-run", "--", RUNTIMES.bun!, "app.ts"], { env });
    assert.match(readFileSync(preload!, "utf8"), /forklift\.reporter/);
  });

  test(
    "the binary copied alone into an empty directory runs Deno and Bun workers, counts exactly, exits 0",
    {
      skip: RUNTIMES.deno ? false : "needs deno as well as bun",
    },
    async () => {
      const alone = `${dir}/alone`;
      mkdirSync(alone);
      copyFileSync(bin, `${alone}/forklift`);
      const app = `${ROOT}tests/fixtures/master/app.ts`;
      for (const runtime of ["deno", "bun"] as const) {
        const { master, port } = await startWorkers(runtime, app, {
          forklift: [`${alone}/forklift`],
          cwd: alone,
          env: { XDG_RUNTIME_DIR: `${dir}/run-${runtime}` },
        });
        try {
          const sent = 16;
          for (let i = 0; i < sent; i++) assert.equal((await getFresh(port, "/"))?.status, 200);
          await waitFor(
            `${runtime} count`,
            async () =>
              sumSamples(await master.metrics(), "http_server_request_duration_seconds_count") ===
                sent,
            5_000,
          );
          // The dashboard's page and its charting library come from the binary itself.
          assert.match(await (await master.get("/")).text(), /<script src="\/dashboard\.js"/);
          assert.match(await (await master.get("/dashboard.js")).text(), /uPlot/);
          master.signal("SIGTERM");
          assert.deepEqual(await master.exited, { code: 0, signal: null }, master.stderr);
        } finally {
          await master.cleanup();
        }
      }
      // The binary needs nothing beside it and writes nothing where it runs.
      assert.deepEqual(readdirSync(alone), ["forklift"]);
    },
  );

  test("the binary's workers report a taken port at the app's line, not the minified reporter's", {
    skip: RUNTIMES.deno ? false : "needs deno as well as bun",
  }, async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, "0.0.0.0", () => r()));
    const port = (taken.address() as { port: number }).port;
    try {
      for (const runtime of ["deno", "bun"] as const) {
        const master = new Master(
          [
            "-w",
            "1",
            "--metrics-bind",
            "127.0.0.1:0",
            "--",
            ...serverArgv(runtime, `${ROOT}tests/fixtures/master/app.ts`),
          ],
          {
            forklift: [bin],
            env: cleanEnv({
              PORT: String(port),
              NO_COLOR: "1",
              XDG_RUNTIME_DIR: `${dir}/run-${runtime}`,
            }),
            deadlineMs: 30_000,
          },
        );
        try {
          assert.equal((await master.exited).code, 3, master.stderr);
          const worker = master.stderr.split("\n").filter((l) => !/^\d{4}-\d\d-\d\d /.test(l));
          const frames = worker.filter((l) => /^\s+at /.test(l));
          assert.match(frames[0] ?? "", /tests\/fixtures\/master\/app\.ts:\d+:\d+/, master.stderr);
          assert.doesNotMatch(worker.join("\n"), /preload|sourcemap/, master.stderr);
        } finally {
          await master.cleanup();
        }
      }
    } finally {
      taken.close();
    }
  });
});
