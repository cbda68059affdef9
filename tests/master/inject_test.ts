import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { planLaunch, shellQuote } from "../../src/master/inject.ts";
import { ConfigError } from "../../src/config/errors.ts";
import { programName } from "../../src/master/command.ts";
import { lineWriter } from "../../src/master/output.ts";
import { ROOT, runtimeArgv } from "../_helpers/cli.ts";
import { getFresh, RUNTIMES, startWorkers, sumSamples, waitFor } from "../_helpers/master.ts";

const COUNT = "http_server_request_duration_seconds_count";

const PRELOAD = "/opt/forklift/preload.js";
const ALLOW = "--allow-env=FORKLIFT_MASTER_PID,FORKLIFT_WORKER_ID,FORKLIFT_WORKERS";

function plan(
  argv: string[],
  extra: {
    inject?: boolean;
    env?: Record<string, string>;
    cwd?: string;
    channel?: string;
    bunPreload?: string;
  } = {},
) {
  return planLaunch(argv, {
    inject: extra.inject ?? true,
    preload: PRELOAD,
    bunPreload: extra.bunPreload,
    env: extra.env ?? {},
    cwd: extra.cwd ?? "/nonexistent",
    channel: extra.channel,
  });
}

const SOCK = "/run/user/1000/forklift-7.sock";
/** What every injected `deno run` starts with. */
const DENO_RUN = ["deno", "run", "--unstable-net", "--preload", PRELOAD];
const ALLOW_CHANNEL = `${ALLOW},FORKLIFT_CHANNEL,FORKLIFT_CHANNEL_TOKEN`;

describe("planLaunch()", () => {
  test("planLaunch() preloads the reporter into deno run with the env it reads", () => {
    const p = plan(["/usr/bin/deno", "run", "--allow-net", "server.ts", "--flag"]);
    assert.deepEqual(p.argv, [
      "/usr/bin/deno",
      "run",
      "--unstable-net",
      "--preload",
      PRELOAD,
      ALLOW,
      "--allow-net",
      "server.ts",
      "--flag",
    ]);
    assert.deepEqual(p.env, {});
    assert.equal(p.injected, true);
  });

  test("planLaunch() grants a deno worker its channel socket, and nothing more", () => {
    const p = plan(["deno", "run", "--allow-net", "--allow-read=./static", "server.ts"], {
      channel: SOCK,
    });
    assert.deepEqual(p.argv, [
      ...DENO_RUN,
      ALLOW_CHANNEL,
      `--allow-read=${SOCK}`,
      `--allow-write=${SOCK}`,
      "--allow-net",
      "--allow-read=./static",
      "server.ts",
    ]);
    assert.equal(p.channel, SOCK);
  });

  test("planLaunch() never narrows a whole permission with the channel's scoped one", () => {
    for (
      const [flags, expected] of [
        [["-A"], []],
        [["--allow-all"], []],
        [["-R", "-W", "-E", "-N"], []],
        [["-R", "-W", "-E"], [`--allow-net=unix:${SOCK}`]],
        [["--allow-read", "--allow-env", "--allow-net"], [`--allow-write=${SOCK}`]],
        [["--allow-write", "--allow-net=0.0.0.0:8000"], [
          ALLOW_CHANNEL,
          `--allow-read=${SOCK}`,
          `--allow-net=unix:${SOCK}`,
        ]],
      ] as const
    ) {
      const p = plan(["deno", "run", ...flags, "server.ts"], { channel: SOCK });
      assert.deepEqual(
        p.argv.slice(DENO_RUN.length, p.argv.length - flags.length - 1),
        expected,
        flags.join(" "),
      );
    }
  });

  test("planLaunch() gives bun workers the socket channel and the Bun preload", () => {
    const p = plan(["bun", "server.ts"], { channel: SOCK, bunPreload: "/opt/forklift/p.bun.js" });
    assert.equal(p.channel, SOCK);
    assert.deepEqual(p.env, { BUN_OPTIONS: "--preload=/opt/forklift/p.bun.js" });
    const spaced = plan(["bun", "server.ts"], { channel: SOCK, bunPreload: "/opt/a b/p.bun.js" });
    assert.equal(spaced.channel, SOCK);
    // Without injection, no reporter is loaded for it: a Node IPC channel.
    for (const argv of [["deno", "run", "x.ts"], ["bun", "x.ts"]]) {
      assert.equal(plan(argv, { channel: SOCK, inject: false }).channel, undefined);
    }
  });

  test("planLaunch() adds no scoped --allow-env next to -A", () => {
    const p = plan(["deno", "run", "-A", "server.ts"]);
    assert.deepEqual(p.argv, [...DENO_RUN, "-A", "server.ts"]);
  });

  test("planLaunch() turns deno serve into DENO_AUTO_SERVE=1 deno run with the address", () => {
    const p = plan(["deno", "serve", "-A", "--port", "9000", "--host=127.0.0.1", "app.ts"]);
    assert.deepEqual(p.argv, [
      "deno",
      "run",
      "--unstable-net",
      "--preload",
      PRELOAD,
      "-A",
      "app.ts",
    ]);
    assert.deepEqual(p.env, { DENO_AUTO_SERVE: "1", DENO_SERVE_ADDRESS: "tcp:127.0.0.1:9000" });
  });

  test("planLaunch() keeps deno serve --parallel, loading the reporter in each isolate", () => {
    const p = plan(
      ["deno", "serve", "--parallel", "--port", "9000", "--env-file=.env", "app.ts", "x"],
      { channel: SOCK, env: { DENO_JOBS: "3" }, cwd: "/srv/app" },
    );
    const entry = p.argv.at(-2)!;
    assert.deepEqual(p.argv.slice(0, -2), [
      "deno",
      "serve",
      "--unstable-net",
      `${ALLOW_CHANNEL},FORKLIFT_ISOLATES`,
      `--allow-read=${SOCK}`,
      `--allow-write=${SOCK}`,
      `--allow-net=unix:${SOCK}`,
      "--parallel",
      "--port",
      "9000",
      "--env-file=.env",
    ]);
    assert.equal(p.argv.at(-1), "x");
    assert.equal(
      decodeURIComponent(entry.slice("data:application/javascript,".length)),
      `import "file://${PRELOAD}";\nexport { default } from "file:///srv/app/app.ts";\n`,
    );
    assert.deepEqual(p.env, { DENO_JOBS: "3", FORKLIFT_ISOLATES: "3" });
    assert.equal(p.isolates, 3);
    assert.throws(() => plan(["deno", "serve", "--parallel"]), ConfigError);
  });

  test("planLaunch() refuses npx deno with what to give instead, unless --no-inject", () => {
    assert.throws(
      () => plan(["/usr/bin/npx", "-y", "deno@2.9.6", "run", "-A", "app.ts"]),
      (e: Error) =>
        e instanceof ConfigError &&
        /through npx: it starts deno as its own child/.test(e.message) &&
        /npm install -g deno@2\.9\.6`, `command -v deno` prints it/.test(e.message) &&
        /--no-inject/.test(e.message),
    );
    assert.equal(
      plan(["/usr/bin/npx", "-y", "deno@2.9.6", "run", "app.ts"], { inject: false }).injected,
      false,
    );
    assert.equal(
      plan(["/usr/bin/npx", "tsx", "app.ts"]).injected,
      false,
      "not a runtime forklift knows",
    );
  });

  test("planLaunch() sees through npm's deno shim to the binary it would start", () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-shim-`);
    try {
      mkdirSync(`${dir}/node_modules/deno`, { recursive: true });
      mkdirSync(`${dir}/node_modules/@deno/linux-x64-glibc`, { recursive: true });
      mkdirSync(`${dir}/node_modules/.bin`, { recursive: true });
      writeFileSync(`${dir}/node_modules/deno/bin.cjs`, "#!/usr/bin/env node\n");
      writeFileSync(`${dir}/node_modules/@deno/linux-x64-glibc/deno`, "", { mode: 0o755 });
      symlinkSync("../deno/bin.cjs", `${dir}/node_modules/.bin/deno`);
      const p = plan([`${dir}/node_modules/.bin/deno`, "run", "app.ts"]);
      assert.equal(p.argv[0], `${dir}/node_modules/@deno/linux-x64-glibc/deno`);
      assert.equal(p.injected, true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("planLaunch() runs a simple deno task's own command", () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-inject-`);
    try {
      writeFileSync(
        `${dir}/deno.jsonc`,
        `{ // comment\n "tasks": { "start": "deno run -A main.ts", "dev": { "command": "deno run --watch main.ts && echo" } } }`,
      );
      const p = plan(["/bin/deno", "task", "start", "--verbose"], { cwd: dir });
      assert.deepEqual(p.argv, [
        "/bin/deno",
        "run",
        "--unstable-net",
        "--preload",
        PRELOAD,
        "-A",
        "main.ts",
        "--verbose",
      ]);
      assert.throws(() => plan(["deno", "task", "dev"], { cwd: dir }), (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(
          e.message,
          /^Cannot preload the reporter through "deno task dev": .* add --no-inject$/,
        );
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("planLaunch() preloads into bun through BUN_OPTIONS, keeping the user's options", () => {
    const p = plan(["/usr/local/bin/bun", "run", "app.ts"], { env: { BUN_OPTIONS: "--smol" } });
    assert.deepEqual(p.argv, ["/usr/local/bin/bun", "run", "app.ts"]);
    // `bun run` takes only the `=` form from BUN_OPTIONS: with a space it prints its usage.
    assert.deepEqual(p.env, { BUN_OPTIONS: `--smol --preload=${PRELOAD}` });
  });

  test("planLaunch() gives bun a preload path with a space in argv, which BUN_OPTIONS would split", () => {
    const spaced = "/home/me/My Projects/forklift/src/reporter/preload.ts";
    const p = plan(["/usr/local/bin/bun", "run", "app.ts"], { bunPreload: spaced });
    assert.deepEqual(p.argv, ["/usr/local/bin/bun", `--preload=${spaced}`, "run", "app.ts"]);
    assert.deepEqual(p.env, {});
  });

  test("planLaunch() leaves other programs, and --no-inject, untouched", () => {
    assert.deepEqual(plan(["node", "server.js"]), {
      argv: ["node", "server.js"],
      env: {},
      injected: false,
      runtime: "other",
    });
    const p = plan(["deno", "run", "-A", "s.ts"], { inject: false });
    assert.deepEqual(p.argv, ["deno", "run", "-A", "s.ts"]);
    assert.equal(p.injected, false);
  });

  test("planLaunch() rejects deno subcommands it cannot inject into", () => {
    assert.throws(() => plan(["deno", "test"]), /Cannot preload the reporter into "deno test"/);
  });
});

describe("shellQuote()", () => {
  test("shellQuote() quotes only what a shell would split", () => {
    assert.equal(shellQuote(["a", "b c", "it's", "--x=1"]), `a 'b c' 'it'\\''s' --x=1`);
  });
});

describe("programName()", () => {
  test("programName() names the script, else the command", () => {
    assert.equal(programName(["deno", "run", "-A", "src/api.ts"]), "api");
    assert.equal(programName(["bun", "server.mjs"]), "server");
    assert.equal(programName(["/usr/bin/python3", "-m", "http.server"]), "python3");
  });
});

describe("lineWriter()", () => {
  test("lineWriter() prefixes whole lines, holds partial ones, and wraps JSON", () => {
    const out: string[] = [];
    let json = false;
    const w = lineWriter(3, "stderr", (s) => out.push(s), { prefix: () => true, json: () => json });
    w.write("a\nb");
    w.write(new TextEncoder().encode("c\n"));
    json = true;
    w.write("d\ne");
    w.flush();
    assert.deepEqual(out, [
      "[w3] a\n",
      "[w3] bc\n",
      `{"worker":3,"stream":"stderr","line":"d"}\n`,
      `{"worker":3,"stream":"stderr","line":"e"}\n`,
    ]);
  });
});

describe("forklift run from a checkout", () => {
  test("forklift run preloads the reporter into bun from a checkout whose path has a space", {
    skip: !RUNTIMES.bun,
  }, async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift inject `);
    try {
      // A checkout under "My Projects", say: its own src/, the rest shared.
      cpSync(`${ROOT}src`, `${dir}/src`, { recursive: true });
      for (const name of ["node_modules", "package.json", "deno.json", "deno.lock"]) {
        symlinkSync(`${ROOT}${name}`, `${dir}/${name}`);
      }
      const { master, port } = await startWorkers("bun", `${ROOT}tests/fixtures/master/app.ts`, {
        forklift: runtimeArgv(`${dir}/src/cli/main.ts`),
      });
      try {
        for (let i = 0; i < 10; i++) assert.equal((await getFresh(port, "/"))?.status, 200);
        await waitFor("10 counted", async () => sumSamples(await master.metrics(), COUNT) === 10);
      } finally {
        await master.cleanup();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
