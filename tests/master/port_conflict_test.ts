import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import { createServer } from "node:net";
import { cleanEnv, ROOT } from "../_helpers/cli.ts";
import { alive, freePort, Master, RUNTIMES, serverArgv, waitFor } from "../_helpers/master.ts";

const APP = `${ROOT}tests/fixtures/master/app.ts`;
/** A server that listens with reusePort by itself, as a second app on the same port would. */
const OTHER = `${ROOT}tests/fixtures/reuse_port_app.ts`;
/** Listening sockets another program holds, as the test asks (Python's socket module). */
const LISTENERS = readFileSync(`${ROOT}tests/fixtures/listeners.py`, "utf8");

/** A python3 this user can run, and one that user 65534 can run through setpriv (or undefined). */
function pythons(): { self?: string; nobody?: string } {
  const candidates = ["python3", "/usr/bin/python3", "/usr/local/bin/python3"];
  const works = (argv: string[]) =>
    spawnSync(argv[0], [...argv.slice(1), "-c", "pass"]).status === 0;
  const self = candidates.find((p) => works([p]));
  const asNobody = (
    p: string,
  ) => ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", p];
  const nobody = process.getuid?.() === 0
    ? candidates.slice(1).find((p) => works(asNobody(p)))
    : undefined;
  return { self, nobody: nobody && asNobody(nobody).join(" ") };
}
const PYTHON = process.platform === "linux" ? pythons() : {};

/** Starts sockets listening on `port` at each of `specs` (see listeners.py), as `python`. */
async function listen(python: string, port: number, specs: string[]): Promise<ChildProcess> {
  const [cmd, ...pre] = python.split(" ");
  const child = spawn(cmd, [...pre, "-c", LISTENERS, String(port), "30", ...specs], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  await waitFor(`listeners on ${specs.join(", ")}`, () => {
    if (child.exitCode !== null) throw new Error(`listeners exited: ${out}`);
    return out.includes("listening");
  }, 5_000);
  return child;
}

test("forklift run stops before any worker starts when the metrics port is taken (exit 2)", async () => {
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
  "forklift run stops when another program already serves the workers' port (exit 2), leaving no worker",
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

for (const runtime of ["bun", "deno"] as const) {
  test(
    `forklift run starts when the port's other listeners serve other addresses or belong to another user (${runtime} workers)`,
    {
      skip: !RUNTIMES[runtime]
        ? `needs ${runtime}`
        : !PYTHON.self || !PYTHON.nobody
        ? "needs Linux, root, setpriv and python3"
        : false,
    },
    async () => {
      const port = await freePort();
      const held: ChildProcess[] = [];
      const masters: Master[] = [];
      try {
        // [workers' address, this user's listeners, user 65534's]: the kernel
        // sends each connection to the most specific address, and users never mix.
        const rounds: Array<[string, string[], string[]]> = [
          ["127.0.0.1", ["127.0.0.2+reuseport", "::1+reuseport"], ["127.0.0.3"]],
          ["", [], ["::+v6only"]],
        ];
        for (const [host, mine, nobodys] of rounds) {
          if (mine.length > 0) held.push(await listen(PYTHON.self!, port, mine));
          held.push(await listen(PYTHON.nobody!, port, nobodys));
          const m = new Master(
            ["-w", "2", "--metrics-bind", "127.0.0.1:0", "--", ...serverArgv(runtime, APP)],
            { env: cleanEnv({ PORT: String(port), APP_HOST: host }), deadlineMs: 30_000 },
          );
          masters.push(m);
          await m.waitReady(2);
          const res = await fetch(`http://127.0.0.1:${port}/pid`);
          assert.ok((await m.readyPids()).includes(Number(await res.text())));
          assert.doesNotMatch(m.stderr, /already served/);
          await m.cleanup();
          assert.equal(m.exit?.code, 0, m.stderr);
          for (const c of held.splice(0)) c.kill("SIGKILL");
        }
      } finally {
        for (const c of held) c.kill("SIGKILL");
        for (const m of masters) await m.cleanup();
      }
    },
  );
}

for (const runtime of ["deno", "bun"] as const) {
  test(
    `forklift run's workers report a port taken without SO_REUSEPORT at the app's own line (${runtime})`,
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

test(
  "forklift run stops when a program of the same user serves an address inside the workers' wildcard (exit 2)",
  { skip: !RUNTIMES.bun ? "needs bun" : !PYTHON.self ? "needs Linux and python3" : false },
  async () => {
    const port = await freePort();
    const other = await listen(PYTHON.self!, port, ["127.0.0.2+reuseport"]);
    const m = new Master(
      ["-w", "1", "--metrics-bind", "127.0.0.1:0", "--", ...serverArgv("bun", APP)],
      { env: cleanEnv({ PORT: String(port) }), deadlineMs: 30_000 },
    );
    try {
      const exit = await m.exited;
      assert.equal(exit.code, 2, m.stderr);
      assert.match(
        m.stderr,
        new RegExp(
          `Port ${port} is already served by another program \\(1 listening socket\\(s\\) on 127\\.0\\.0\\.2, uid ${
            process.getuid!()
          }\\)`,
        ),
      );
    } finally {
      other.kill("SIGKILL");
      await m.cleanup();
    }
  },
);
