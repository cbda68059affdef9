import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { channelPath } from "../../src/master/channel_path.ts";
import { cleanEnv, MAIN, ROOT, runtimeArgv } from "../_helpers/cli.ts";
import {
  alive,
  freePort,
  getFresh,
  Master,
  RUNTIMES,
  serverArgv,
  waitFor,
} from "../_helpers/master.ts";

test("channelPath() puts the socket in a directory of its own with a random name", () => {
  const a = channelPath({ XDG_RUNTIME_DIR: "/run/user/1000/" });
  const b = channelPath({ XDG_RUNTIME_DIR: "/run/user/1000/" });
  assert.match(a, /^\/run\/user\/1000\/forklift-channel-[0-9a-f]{16}\/channel\.sock$/);
  assert.notEqual(a, b, "two masters never share a name");
  assert.match(channelPath({}), /\/forklift-channel-[0-9a-f]{16}\/channel\.sock$/);
});

const UNSHARE = process.getuid?.() === 0 &&
  spawnSync("unshare", ["--pid", "--fork", "--mount-proc", "true"]).status === 0;

/** The host pid of the only child of `pid` (the master under `unshare --fork`). */
function childOf(pid: number): number {
  const found = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/);
  assert.equal(found.length, 1, `children of ${pid}: ${found}`);
  return Number(found[0]);
}

/**
 * The workers of a master as its /status lists them. Their pids are those of
 * the master's pid namespace, so this never hands them to `Master.cleanup()`:
 * killing the namespace's first process (the master) ends them all.
 */
async function workers(m: Master): Promise<Array<{ pid: number; state: string }>> {
  const res = await fetch(`http://127.0.0.1:${m.metricsPort}/status`, {
    signal: AbortSignal.timeout(2_000),
  });
  return (await res.json()).workers;
}

/** Rolls the master's one worker with HUP; resolves once another one is ready. */
async function roll(m: Master, init: number, port: number): Promise<void> {
  const before = (await workers(m))[0].pid;
  process.kill(init, "SIGHUP");
  await waitFor("a new worker ready after HUP", async () => {
    const ws = await workers(m);
    return ws.length === 1 && ws[0].state === "ready" && ws[0].pid !== before;
  }, 20_000);
  assert.equal((await getFresh(port, "/"))?.status, 200);
}

function channelDirs(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith("forklift-channel-"));
}

test(
  "forklift run in two pid namespaces sharing the temporary directory: both keep serving, and stopping one leaves the other's socket",
  { skip: UNSHARE && RUNTIMES.deno ? false : "needs root, unshare --pid and deno" },
  async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-pidns-`);
    const app = `${ROOT}tests/fixtures/master/app.ts`;
    const masters: Array<{ m: Master; init: number; port: number }> = [];
    try {
      for (let i = 0; i < 2; i++) {
        const port = await freePort();
        const env = cleanEnv({ PORT: String(port), TMPDIR: dir });
        delete env.XDG_RUNTIME_DIR;
        // Each master is PID 1 of its own namespace, as in two containers.
        const m = new Master(
          ["-w", "1", "--metrics-bind", "127.0.0.1:0", "--", ...serverArgv("deno", app)],
          {
            forklift: [
              "unshare",
              "--pid",
              "--fork",
              "--mount-proc",
              "--kill-child",
              ...runtimeArgv(MAIN),
            ],
            env,
            deadlineMs: 50_000,
          },
        );
        masters.push({ m, init: 0, port });
        await m.waitLog(/All 1 worker\(s\) ready/, 20_000);
        masters[i].init = childOf(m.pid);
      }
      const [a, b] = masters;
      // A's next Deno worker must reach A, not B, whose socket came later.
      await roll(a.m, a.init, a.port);
      await roll(b.m, b.init, b.port);
      process.kill(b.init, "SIGTERM");
      assert.deepEqual(await b.m.exited, { code: 0, signal: null }, b.m.stderr);
      // B removed its own socket only: A's next worker still gets in.
      await roll(a.m, a.init, a.port);
      assert.doesNotMatch(a.m.stderr, /cannot reach|\[WRN\]|\[ERR\]/);
      assert.equal(channelDirs(dir).length, 1, "A's socket stays");
      process.kill(a.init, "SIGTERM");
      assert.deepEqual(await a.m.exited, { code: 0, signal: null }, a.m.stderr);
      assert.deepEqual(channelDirs(dir), [], "each master removed what it made");
    } finally {
      for (const { m, init } of masters) {
        if (init && alive(init)) process.kill(init, "SIGKILL");
        await m.cleanup();
      }
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
