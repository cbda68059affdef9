import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { readdirSync, readFileSync } from "node:fs";
import { cleanEnv, MAIN, ROOT, runtimeArgv } from "../_helpers/cli.ts";
import { alive, freePort, getFresh, Master, serverArgv, waitFor } from "../_helpers/master.ts";
import { testRuntime } from "../_helpers/runtime.ts";

const UNSHARE = spawnSync("unshare", ["--pid", "--fork", "--mount-proc", "true"]).status === 0;

/** The children of `pid` as /proc shows them: pid, state and command name. */
function children(pid: number): Array<{ pid: number; state: string; comm: string }> {
  const found = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[1]) !== pid) continue;
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    found.push({ pid: Number(name), state: fields[0], comm });
  }
  return found;
}

test(
  "forklift run as PID 1 of a new pid namespace reaps every orphan that exits, and stops gracefully on TERM",
  {
    skip: UNSHARE || process.env.CI ? false : "needs unshare --pid (root or user namespaces)",
  },
  async () => {
    const port = await freePort();
    const app = `${ROOT}tests/fixtures/master/app.ts`;
    // The master runs as PID 1 in its own pid namespace, as in a container.
    const master = new Master(
      ["-w", "2", "--metrics-bind", "127.0.0.1:0", "--", ...serverArgv(testRuntime(), app)],
      {
        forklift: [
          "unshare",
          "--pid",
          "--fork",
          "--mount-proc",
          "--kill-child",
          ...runtimeArgv(MAIN),
        ],
        env: cleanEnv({ PORT: String(port) }),
        deadlineMs: 40_000,
      },
    );
    let init = 0;
    try {
      await master.waitLog(/All 2 worker\(s\) ready/);
      assert.match(master.stderr, /Running as PID 1: exited orphans are reaped/);
      init = children(master.pid)[0].pid;
      for (let i = 0; i < 4; i++) {
        assert.equal((await getFresh(port, "/orphans"))?.status, 200);
      }
      // The shells exit at once: their sleeps become the master's children...
      await waitFor(
        "orphans under PID 1",
        () => children(init).filter((c) => c.comm === "sleep").length === 8,
        5_000,
      );
      // ...and once they exit, none stays a zombie.
      await waitFor(
        "every orphan reaped",
        () => children(init).every((c) => c.comm !== "sleep" && c.state !== "Z"),
        5_000,
      );
      // A container's stop is a TERM to PID 1: a graceful stop.
      process.kill(init, "SIGTERM");
      assert.deepEqual(await master.exited, { code: 0, signal: null }, master.stderr);
      assert.match(master.stderr, /Stopping gracefully/);
    } finally {
      if (init && alive(init)) process.kill(init, "SIGKILL");
      await master.cleanup();
    }
  },
);
