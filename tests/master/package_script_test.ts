import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { packageScript } from "../../src/master/package_script.ts";
import { planLaunch } from "../../src/master/inject.ts";
import { ConfigError } from "../../src/config/errors.ts";
import { CommandError } from "../../src/master/command.ts";
import { ROOT } from "../_helpers/cli.ts";
import { getFresh, RUNTIMES, startWorkers, sumSamples, waitFor } from "../_helpers/master.ts";

const COUNT = "http_server_request_duration_seconds_count";
const PRELOAD = "/opt/forklift/preload.js";

/** A project as users have them: package.json scripts, node_modules/.bin, and launchers that must not run. */
function makeProject(scripts: Record<string, string>): { dir: string; bin: string } {
  const dir = mkdtempSync(`${tmpdir()}/forklift-scripts-`);
  writeFileSync(
    `${dir}/package.json`,
    JSON.stringify({ name: "shop", version: "1.4.0", scripts }),
  );
  writeFileSync(
    `${dir}/server.ts`,
    `import ${JSON.stringify(`${ROOT}tests/fixtures/master/app.ts`)};\n`,
  );
  writeFileSync(
    `${dir}/server.js`,
    [
      `import http from "node:http";`,
      `import process from "node:process";`,
      `http.createServer((_req, res) => res.end(String(process.pid)))`,
      `  .listen(Number(process.env.PORT));`,
      "",
    ].join("\n"),
  );
  mkdirSync(`${dir}/node_modules/.bin`, { recursive: true });
  for (const runtime of ["deno", "bun"] as const) {
    const exe = RUNTIMES[runtime];
    if (exe) symlinkSync(exe, `${dir}/node_modules/.bin/${runtime}`);
  }
  // The package managers forklift is asked to go through: if one ran, the workers would fail.
  const bin = `${dir}/launchers`;
  mkdirSync(bin);
  for (const name of ["npm", "pnpm", "yarn"]) {
    writeFileSync(`${bin}/${name}`, `#!/bin/sh\necho "${name} ran" >&2\nexit 97\n`);
    chmodSync(`${bin}/${name}`, 0o755);
  }
  if (RUNTIMES.bun) symlinkSync(RUNTIMES.bun, `${bin}/bun`);
  return { dir, bin };
}

describe("packageScript()", () => {
  let dir: string;
  before(() => {
    ({ dir } = makeProject({
      start: "NODE_ENV=production bun server.ts --quiet",
      "serve:deno": "deno run -A server.ts",
      "start:node": "node server.js",
      build: "tsc && bun build.ts",
      predev: "bun gen.ts",
      dev: "bun --watch server.ts",
      nested: "npm run serve:deno",
      loop: "npm run loop",
    }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const resolve = (argv: string[]) => packageScript(argv, { cwd: dir, env: { PATH: "/usr/bin" } });

  test(
    "packageScript() makes the start script's command the worker, as each package manager names it",
    {
      skip: !RUNTIMES.bun,
    },
    () => {
      for (
        const argv of [
          ["/usr/bin/npm", "start"],
          ["/usr/bin/npm", "run", "start"],
          ["/usr/bin/npm", "run-script", "start"],
          ["/usr/bin/pnpm", "start"],
          ["/usr/bin/pnpm", "run", "start"],
          ["/usr/bin/yarn", "start"],
          ["/usr/bin/yarn", "run", "start"],
          ["/opt/bun/bun", "start"],
          ["/opt/bun/bun", "run", "start"],
        ]
      ) {
        const cmd = resolve([...argv, "--", "--port", "3000"]);
        assert.ok(cmd, argv.join(" "));
        assert.deepEqual(cmd.argv, [
          `${dir}/node_modules/.bin/bun`,
          "server.ts",
          "--quiet",
          "--port",
          "3000",
        ]);
        assert.equal(cmd.env.NODE_ENV, "production");
        assert.equal(cmd.env.npm_lifecycle_event, "start");
        assert.equal(cmd.env.npm_lifecycle_script, "NODE_ENV=production bun server.ts --quiet");
        assert.equal(cmd.env.npm_package_name, "shop");
        assert.equal(cmd.env.npm_package_version, "1.4.0");
        assert.equal(cmd.env.npm_package_json, `${dir}/package.json`);
        assert.ok(cmd.env.PATH.startsWith(`${dir}/node_modules/.bin:`), cmd.env.PATH);
        assert.ok(cmd.env.PATH.endsWith(":/usr/bin"), cmd.env.PATH);
      }
    },
  );

  test("packageScript() runs yarn's and pnpm's bare script names, but not bun's files", {
    skip: !RUNTIMES.deno,
  }, () => {
    for (
      const argv of [
        ["/usr/bin/yarn", "serve:deno"],
        ["/usr/bin/pnpm", "serve:deno"],
        ["/usr/bin/deno", "task", "serve:deno"],
      ]
    ) {
      assert.deepEqual(resolve(argv)?.argv, [
        `${dir}/node_modules/.bin/deno`,
        "run",
        "-A",
        "server.ts",
      ]);
    }
    assert.equal(resolve(["/opt/bun/bun", "server.ts"]), undefined);
    assert.equal(resolve(["/opt/bun/bun", "run", "server.ts"]), undefined);
    assert.equal(resolve(["/usr/bin/npm", "serve:deno"]), undefined, "npm has no bare form");
    assert.equal(resolve(["/usr/bin/npm", "install"]), undefined);
    assert.equal(resolve(["/usr/local/bin/node", "start"]), undefined);
  });

  test("packageScript() gives node to bun under --bun, as bun run does", () => {
    assert.deepEqual(resolve(["/opt/bun/bun", "run", "--bun", "start:node"])?.argv, [
      "/opt/bun/bun",
      "server.js",
    ]);
    assert.deepEqual(resolve(["/opt/bun/bun", "--bun", "start:node"])?.argv, [
      "/opt/bun/bun",
      "server.js",
    ]);
  });

  test("packageScript() refuses scripts it cannot stand for, with the command to give instead", () => {
    const refused = (argv: string[], re: RegExp) =>
      assert.throws(() => resolve(argv), (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.match(e.message, re);
        assert.match(e.message, /or add --no-inject$/);
        return true;
      });
    refused(
      ["/usr/bin/npm", "run", "build"],
      /^Cannot preload the reporter through "npm run build": the "build" script \(tsc && bun build\.ts\) needs a shell/,
    );
    refused(
      ["/usr/bin/npm", "run", "dev"],
      /npm also runs the "predev" script, which forklift would not \(run it yourself\); give the server's own command instead \(forklift run -- bun --watch server\.ts\)/,
    );
    refused(["/opt/bun/bun", "dev"], /bun also runs the "predev" script/);
    refused(["/usr/bin/deno", "task", "dev"], /deno also runs the "predev" script/);
    refused(
      ["/opt/bun/bun", "--smol", "run", "start"],
      /bun's options \(--smol\) .*\(NODE_ENV=production forklift run -- bun --smol server\.ts --quiet\)/,
    );
    refused(["/usr/bin/npm", "run", "nope"], /package\.json has no "nope" script/);
    refused(["/usr/bin/npm", "run", "constructor"], /package\.json has no "constructor" script/);
    refused(["/usr/bin/npm", "run", "__proto__"], /package\.json has no "__proto__" script/);
    assert.equal(resolve(["/usr/bin/yarn", "toString"]), undefined, "not a script of the project");
    refused(["/usr/bin/yarn", "run", "nope"], /package\.json has no "nope" script/);
    assert.throws(
      () => packageScript(["/usr/bin/npm", "start"], { cwd: `${dir}/node_modules`, env: {} }),
      /there is no package\.json in /,
    );
    // pnpm does not run pre/post scripts unless told to.
    assert.ok(resolve(["/usr/bin/pnpm", "run", "dev"]));
  });

  test("packageScript() says which script names a program that is not there", () => {
    writeFileSync(`${dir}/package.json`, JSON.stringify({ scripts: { start: "nosuchprogram x" } }));
    assert.throws(() => resolve(["/usr/bin/npm", "start"]), (e: unknown) => {
      assert.ok(e instanceof CommandError);
      assert.equal(e.exitCode, 127);
      assert.match(e.message, /nosuchprogram.*in the "start" script of .*package\.json/);
      return true;
    });
  });

  test("planLaunch() runs deno.json's task before package.json's script of the same name", () => {
    writeFileSync(`${dir}/package.json`, JSON.stringify({ scripts: { start: "bun server.ts" } }));
    writeFileSync(`${dir}/deno.json`, JSON.stringify({ tasks: { start: "deno run -A main.ts" } }));
    try {
      const p = planLaunch(["/usr/bin/deno", "task", "start"], {
        inject: true,
        preload: PRELOAD,
        env: {},
        cwd: dir,
      });
      assert.deepEqual(p.argv.slice(-2), ["-A", "main.ts"]);
      assert.equal(p.env.npm_lifecycle_event, undefined);
    } finally {
      rmSync(`${dir}/deno.json`);
    }
  });

  test("planLaunch() follows a script into another, and stops a loop", () => {
    writeFileSync(
      `${dir}/package.json`,
      JSON.stringify({
        scripts: {
          nested: "npm run serve",
          serve: "bun run main",
          main: "bun main.ts",
          loop: "npm run loop",
        },
      }),
    );
    const plan = (argv: string[]) =>
      planLaunch(argv, { inject: true, preload: PRELOAD, env: { PATH: "/usr/bin" }, cwd: dir });
    if (RUNTIMES.bun) {
      const p = plan(["/usr/bin/npm", "run", "nested"]);
      assert.deepEqual(p.argv, [`${dir}/node_modules/.bin/bun`, "main.ts"]);
      assert.equal(p.env.BUN_OPTIONS, `--preload=${PRELOAD}`);
      assert.equal(p.env.npm_lifecycle_event, "main");
      assert.equal(p.injected, true);
    }
    assert.throws(() => plan(["/usr/bin/npm", "run", "loop"]), /call each other more than 8 deep/);
    assert.deepEqual(
      planLaunch(["/usr/bin/npm", "start"], {
        inject: false,
        preload: PRELOAD,
        env: {},
        cwd: dir,
      }).argv,
      ["/usr/bin/npm", "start"],
      "--no-inject runs what it is given",
    );
  });
});

/** Starts `forklift run -w 2 -- COMMAND` in the project; checks both workers answer and every request counts. */
async function serveThrough(command: string[], runtime: "deno" | "bun"): Promise<void> {
  const { dir, bin } = makeProject({
    start: "bun server.ts",
    "start:node": "node server.js",
    "serve:deno": "deno run -A server.ts",
  });
  try {
    const { master, port } = await startWorkers(runtime, "", {
      command: () => command,
      cwd: dir,
      env: { PATH: `${bin}:${process.env.PATH ?? ""}` },
    });
    try {
      const ready = await master.readyPids();
      assert.equal(ready.length, 2);
      const seen = new Set<number>();
      const K = 60;
      for (let i = 0; i < K; i++) {
        const r = await getFresh(port, "/pid");
        assert.equal(r?.status, 200, `request ${i} of ${command.join(" ")}`);
        seen.add(Number(r!.body));
      }
      assert.deepEqual([...seen].sort(), [...ready].sort(), "both workers answer");
      await waitFor(
        `${K} requests counted`,
        async () => sumSamples(await master.metrics(), COUNT) === K,
        3_000,
      );
      assert.doesNotMatch(master.stderr, /ran\b|EADDRINUSE|AddrInUse/);
    } finally {
      await master.cleanup();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("forklift run through package.json scripts", () => {
  test("forklift run starts `bun start` as 2 bun workers that share the port and count", {
    skip: !RUNTIMES.bun,
  }, () => serveThrough(["bun", "start"], "bun"));

  test("forklift run starts `npm start` (a bun script) as 2 workers, npm never started", {
    skip: !RUNTIMES.bun,
  }, () => serveThrough(["npm", "start"], "bun"));

  test("forklift run starts `bun run --bun start:node` (node server.js) as 2 bun workers", {
    skip: !RUNTIMES.bun,
  }, () => serveThrough(["bun", "run", "--bun", "start:node"], "bun"));

  test(
    "forklift run starts `bun run server.ts` (a file, not a script) with a preload bun run takes",
    {
      skip: !RUNTIMES.bun,
    },
    () => serveThrough(["bun", "run", "server.ts"], "bun"),
  );

  test("forklift run starts `yarn serve:deno` as 2 deno workers that share the port and count", {
    skip: !RUNTIMES.deno,
  }, () => serveThrough(["yarn", "serve:deno"], "deno"));
});
