import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { channelPath } from "../../src/master/channel_path.ts";
import { STALE_AFTER_MS, sweepStaleChannels } from "../../src/master/channel_sweep.ts";
import { listenChannel, probeSocket } from "../../src/runtime/channel_server.ts";
import { ROOT } from "../_helpers/cli.ts";
import { RUNTIMES, serverArgv, startWorkers, waitFor } from "../_helpers/master.ts";
import { fixture, testRuntime } from "../_helpers/runtime.ts";

/** Socket files whose listener was SIGKILLed: what a killed master leaves behind. */
async function leftBehind(paths: string[]): Promise<void> {
  const [cmd, ...args] = serverArgv(testRuntime(), fixture("unix_listener.ts"));
  const child = spawn(cmd, [...args, ...paths], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error("the listener did not start in 10 s")),
        10_000,
      );
      let out = "";
      child.stdout!.on("data", (d) => {
        out += d;
        if (out.includes("listening")) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
}

function age(path: string, ms: number): void {
  const t = (Date.now() - ms) / 1000;
  utimesSync(path, t, t);
}

test("probeSocket() tells a listening socket from one whose process was killed", async () => {
  const dir = mkdtempSync(`${tmpdir()}/forklift-probe-`);
  const live = listenChannel(`${dir}/live.sock`);
  try {
    await leftBehind([`${dir}/dead.sock`]);
    assert.equal(existsSync(`${dir}/dead.sock`), true, "SIGKILL leaves the file");
    assert.equal(await probeSocket(`${dir}/live.sock`), "live");
    assert.equal(await probeSocket(`${dir}/dead.sock`), "stale");
    assert.equal(await probeSocket(`${dir}/missing.sock`), "unknown");
  } finally {
    live.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sweepStaleChannels() removes only old sockets of killed masters, never its own or a live one", async () => {
  const dir = mkdtempSync(`${tmpdir()}/forklift-sweep-`);
  const at = (name: string) => `${dir}/${name}`;
  const live = listenChannel(at("forklift-3.sock"));
  try {
    await leftBehind([
      at("forklift-1.sock"), // killed long ago: removed
      at("forklift-2.sock"), // killed, but as new as a master just starting: kept
      at("forklift-5.sock"), // the sweeping master's own name: kept
      at("other-6.sock"), // not a name forklift gives: kept
    ]);
    writeFileSync(at("forklift-4.sock"), "not a socket");
    const old = STALE_AFTER_MS + 5_000;
    for (
      const name of [
        "forklift-1.sock",
        "forklift-3.sock",
        "forklift-4.sock",
        "forklift-5.sock",
        "other-6.sock",
      ]
    ) {
      age(at(name), old);
    }
    const removed = await sweepStaleChannels(at("forklift-5.sock"));
    assert.deepEqual(removed, [at("forklift-1.sock")]);
    for (
      const name of [
        "forklift-2.sock",
        "forklift-3.sock",
        "forklift-4.sock",
        "forklift-5.sock",
        "other-6.sock",
      ]
    ) {
      assert.equal(existsSync(at(name)), true, `${name} is kept`);
    }
    assert.equal(await probeSocket(at("forklift-3.sock")), "live", "the live master still listens");
    assert.deepEqual(await sweepStaleChannels(`${dir}/missing/forklift-9.sock`), []);
  } finally {
    live.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  "Arbiter removes a killed master's channel socket once its Deno workers are ready",
  { skip: !RUNTIMES.deno },
  async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-runtime-dir-`);
    try {
      const stale = `${dir}/forklift-1.sock`;
      await leftBehind([stale]);
      age(stale, STALE_AFTER_MS + 5_000);
      const { master: m } = await startWorkers("deno", `${ROOT}tests/fixtures/master/app.ts`, {
        workers: 1,
        env: { XDG_RUNTIME_DIR: dir },
      });
      try {
        await waitFor("the stale socket removed", () => !existsSync(stale));
        assert.equal(existsSync(channelPath({ XDG_RUNTIME_DIR: dir }, m.pid)), true);
      } finally {
        await m.cleanup();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
