import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
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

/** A channel directory's path as `channelPath()` names them, in `base`. */
function channelDir(base: string, hex: string): string {
  const dir = `${base}/forklift-channel-${hex.repeat(16).slice(0, 16)}`;
  return dir;
}

test("probeSocket() tells a listening socket from one whose process was killed", async () => {
  const dir = mkdtempSync(`${tmpdir()}/forklift-probe-`);
  const live = listenChannel(`${dir}/live/channel.sock`);
  try {
    await leftBehind([`${dir}/dead.sock`]);
    assert.equal(existsSync(`${dir}/dead.sock`), true, "SIGKILL leaves the file");
    assert.equal(await probeSocket(`${dir}/live/channel.sock`), "live");
    assert.equal(await probeSocket(`${dir}/dead.sock`), "stale");
    assert.equal(await probeSocket(`${dir}/missing.sock`), "unknown");
  } finally {
    live.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("listenChannel() makes its directory private, refuses one that exists, and removes only what it made", () => {
  const base = mkdtempSync(`${tmpdir()}/forklift-listen-`);
  try {
    const dir = channelDir(base, "a");
    const server = listenChannel(`${dir}/channel.sock`);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(`${dir}/channel.sock`).mode & 0o077, 0);
    assert.throws(() => listenChannel(`${dir}/channel.sock`), /EEXIST|exists/);
    assert.equal(
      existsSync(`${dir}/channel.sock`),
      true,
      "a refused listen leaves the first one's socket",
    );
    server.close();
    assert.equal(existsSync(dir), false);
    // A directory that replaced ours (same name, another directory) is not ours to remove.
    const other = listenChannel(`${channelDir(base, "b")}/channel.sock`);
    const otherDir = channelDir(base, "b");
    rmSync(otherDir, { recursive: true });
    mkdirSync(otherDir, { mode: 0o700 });
    other.close();
    assert.equal(existsSync(otherDir), true);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test("sweepStaleChannels() removes only old sockets of killed masters, never its own or a live one", async () => {
  const base = mkdtempSync(`${tmpdir()}/forklift-sweep-`);
  const sock = (hex: string) => `${channelDir(base, hex)}/channel.sock`;
  for (const hex of ["1", "2", "4", "5", "6"]) mkdirSync(channelDir(base, hex), { mode: 0o700 });
  const live = listenChannel(sock("3"));
  try {
    await leftBehind([
      sock("1"), // killed long ago: removed, with its directory
      sock("2"), // killed, but as new as a master just starting: kept
      sock("4"), // killed long ago, but its directory holds something else: kept
      sock("5"), // the sweeping master's own: kept
      `${base}/forklift-7.sock`, // an earlier version's name, killed long ago: removed
      `${base}/other-8.sock`, // not a name forklift gives: kept
    ]);
    writeFileSync(`${channelDir(base, "4")}/note`, "");
    writeFileSync(`${base}/forklift-9.sock`, "not a socket");
    mkdirSync(channelDir(base, "a"), { mode: 0o700 }); // empty and old: removed
    const old = STALE_AFTER_MS + 5_000;
    for (const hex of ["1", "3", "4", "5"]) age(sock(hex), old);
    for (const name of ["forklift-7.sock", "forklift-9.sock", "other-8.sock"]) {
      age(`${base}/${name}`, old);
    }
    age(channelDir(base, "a"), old);
    const removed = await sweepStaleChannels(sock("5"));
    assert.deepEqual(
      removed.sort(),
      [channelDir(base, "1"), channelDir(base, "a"), `${base}/forklift-7.sock`].sort(),
    );
    assert.deepEqual(
      readdirSync(base).sort(),
      [
        ...["2", "3", "4", "5", "6"].map((h) => channelDir(base, h).slice(base.length + 1)),
        "forklift-9.sock",
        "other-8.sock",
      ].sort(),
    );
    assert.equal(await probeSocket(sock("3")), "live", "the live master still listens");
    assert.deepEqual(
      await sweepStaleChannels(`${base}/missing/forklift-channel-0/channel.sock`),
      [],
    );
  } finally {
    live.close();
    rmSync(base, { recursive: true, force: true });
  }
});

test(
  "forklift run removes a killed master's channel socket once its Deno workers are ready",
  { skip: !RUNTIMES.deno },
  async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-runtime-dir-`);
    try {
      const stale = channelDir(dir, "1");
      mkdirSync(stale, { mode: 0o700 });
      await leftBehind([`${stale}/channel.sock`]);
      age(`${stale}/channel.sock`, STALE_AFTER_MS + 5_000);
      const { master: m } = await startWorkers("deno", `${ROOT}tests/fixtures/master/app.ts`, {
        workers: 1,
        env: { XDG_RUNTIME_DIR: dir },
      });
      try {
        await waitFor("the stale socket removed", () => !existsSync(stale));
        const own = readdirSync(dir).filter((n) => n.startsWith("forklift-channel-"));
        assert.equal(own.length, 1, `the master's own channel stays: ${own}`);
      } finally {
        await m.cleanup();
      }
      assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith("forklift-channel-")), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
