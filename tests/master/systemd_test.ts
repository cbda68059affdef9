import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { cleanEnv, ROOT } from "../_helpers/cli.ts";
import { freePort, Master, RUNTIMES, serverArgv, waitFor } from "../_helpers/master.ts";
import { NEEDS_PYTHON } from "../_helpers/tools.ts";

const APP = `${ROOT}tests/fixtures/master/app.ts`;
const RECEIVER = `${ROOT}tests/fixtures/notify_receiver.py`;

interface Received {
  pid: number;
  message: string;
}

/** A stand-in for systemd's notification socket, with each sender's pid. */
function receiver(
  path: string,
): { child: ChildProcess; got: Received[]; listening: Promise<void> } {
  const child = spawn("python3", [RECEIVER, path, "60"], { stdio: ["ignore", "pipe", "inherit"] });
  const got: Received[] = [];
  let rest = "";
  let ready!: () => void;
  const listening = new Promise<void>((r) => (ready = r));
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (d: string) => {
    const lines = (rest + d).split("\n");
    rest = lines.pop()!;
    for (const line of lines) {
      const doc = JSON.parse(line);
      if (doc.listening) ready();
      else got.push(doc);
    }
  });
  return { child, got, listening };
}

test(
  "forklift run tells systemd READY=1 once every worker answers, RELOADING=1 then READY=1 on HUP, STOPPING=1 on TERM, all from its own pid",
  { skip: !RUNTIMES.bun ? "needs bun" : NEEDS_PYTHON },
  async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-notify-`);
    const path = `${dir}/notify.sock`;
    const r = receiver(path);
    let m: Master | undefined;
    try {
      await r.listening;
      const port = await freePort();
      m = new Master(
        ["-w", "2", "--metrics-bind", "127.0.0.1:0", "--", ...serverArgv("bun", APP)],
        { env: cleanEnv({ PORT: String(port), NOTIFY_SOCKET: path }), deadlineMs: 60_000 },
      );
      const master = m;
      const ready = (n: number) =>
        waitFor(
          `READY=1 #${n}`,
          () => r.got.filter((x) => /^READY=1$/m.test(x.message)).length >= n,
          15_000,
        );
      await ready(1);
      const first = r.got.find((x) => /^READY=1$/m.test(x.message))!;
      assert.match(first.message, /^STATUS=2 of 2 workers ready$/m, "READY before both workers");
      const before = r.got.indexOf(first);
      assert.equal(r.got.slice(0, before).filter((x) => /READY=1/.test(x.message)).length, 0);
      assert.ok((await master.waitReady(2)).length === 2);
      master.signal("SIGHUP");
      await ready(2);
      const reloading = r.got.findIndex((x) => /^RELOADING=1$/m.test(x.message));
      assert.ok(reloading > before, "no RELOADING=1 on HUP");
      assert.match(r.got[reloading].message, /^MONOTONIC_USEC=\d+$/m);
      const second = r.got.findLastIndex((x) => /^READY=1$/m.test(x.message));
      assert.ok(second > reloading, "READY=1 came before the reload's RELOADING=1");
      master.signal("SIGTERM");
      assert.equal((await master.exited).code, 0, master.stderr);
      await waitFor("STOPPING=1", () => r.got.some((x) => /^STOPPING=1$/m.test(x.message)), 5_000);
      const pids = new Set(r.got.map((x) => x.pid));
      assert.deepEqual([...pids], [master.pid], "a message came from another process");
      console.log(`systemd notify: ${r.got.map((x) => x.message.split("\n")[0]).join(", ")}`);
    } finally {
      await m?.cleanup();
      r.child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
