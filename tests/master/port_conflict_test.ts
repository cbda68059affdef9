import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { createServer } from "node:net";
import { cleanEnv, ROOT } from "../_helpers/cli.ts";
import { alive, freePort, Master, RUNTIMES, serverArgv, waitFor } from "../_helpers/master.ts";

const APP = `${ROOT}tests/fixtures/master/app.ts`;
/** A server that listens with reusePort by itself, as a second app on the same port would. */
const OTHER = `${ROOT}scripts/bench/fixtures/hello.ts`;

test("Arbiter stops before any worker starts when the metrics port is taken (exit 2)", async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
  const port = (taken.address() as { port: number }).port;
  const m = new Master(
    ["-w", "2", "--metrics-bind", `127.0.0.1:${port}`, "--", ...serverArgv("bun", APP)],
    { env: cleanEnv({ PORT: String(await freePort()) }), deadlineMs: 30_000 },
  );
  try {
    const exit = await m.exited;
    assert.equal(exit.code, 2, m.stderr);
    assert.match(
      m.stderr,
      new RegExp(
        `Cannot listen on 127\\.0\\.0\\.1:${port} for metrics: address already in use; choose another address with --metrics-bind`,
      ),
    );
    assert.doesNotMatch(m.stderr, /Booting worker/, "a worker was started");
  } finally {
    taken.close();
    await m.cleanup();
  }
});

test(
  "Arbiter stops when another program already serves the workers' port (exit 2), leaving no worker",
  { skip: !RUNTIMES.bun || process.platform !== "linux" },
  async () => {
    const port = await freePort();
    const other = spawn(RUNTIMES.bun!, [OTHER], {
      env: cleanEnv({ PORT: String(port) }),
      stdio: "ignore",
    });
    let m: Master | undefined;
    try {
      await waitFor("the other app to answer", async () => {
        try {
          return (await fetch(`http://127.0.0.1:${port}/`)).ok;
        } catch {
          return false;
        }
      }, 10_000);
      m = new Master(
        ["-w", "2", "--metrics-bind", "127.0.0.1:0", "--", ...serverArgv("bun", APP)],
        { env: cleanEnv({ PORT: String(port) }), deadlineMs: 30_000 },
      );
      const exit = await m.exited;
      assert.equal(exit.code, 2, m.stderr);
      assert.match(m.stderr, new RegExp(`Port ${port} is already served by another program`));
      const pids = [...m.stderr.matchAll(/with pid (\d+)/g)].map((x) => Number(x[1]));
      assert.equal(pids.length, 2, m.stderr);
      await waitFor("no worker left", () => pids.every((p) => !alive(p)), 5_000);
      assert.ok(alive(other.pid!), "the other program was touched");
    } finally {
      other.kill("SIGKILL");
      await m?.cleanup();
    }
  },
);

for (const runtime of ["deno", "bun"] as const) {
  test(
    `serve() under forklift reports a port taken without SO_REUSEPORT at the app's own line (${runtime})`,
    { skip: !RUNTIMES[runtime] },
    async () => {
      const taken = createServer();
      await new Promise<void>((r) => taken.listen(0, "0.0.0.0", () => r()));
      const port = (taken.address() as { port: number }).port;
      const m = new Master(
        ["-w", "1", "--metrics-bind", "127.0.0.1:0", "--", ...serverArgv(runtime, APP)],
        { env: cleanEnv({ PORT: String(port), NO_COLOR: "1" }), deadlineMs: 30_000 },
      );
      try {
        const exit = await m.exited;
        assert.equal(exit.code, 3, m.stderr);
        assert.match(m.stderr, /AddrInUse|EADDRINUSE/);
        // The first frame, and the source line the runtime prints, are the app's call.
        const frames = m.stderr.split("\n").filter((l) => /^\s+at /.test(l));
        assert.match(frames[0] ?? "", /tests\/fixtures\/master\/app\.ts:\d+:\d+/, m.stderr);
        assert.match(m.stderr, /\.serve\(\{ port/, "the app's line is shown");
        const worker = m.stderr.split("\n").filter((l) => !/^\d{4}-\d\d-\d\d /.test(l)).join("\n");
        assert.doesNotMatch(worker, /src\/runtime\/|preload/, "no line of the reporter");
      } finally {
        taken.close();
        await m.cleanup();
      }
    },
  );
}
