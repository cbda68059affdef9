import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { connect, type Socket } from "node:net";
import { cleanEnv, MAIN, ROOT } from "../_helpers/cli.ts";
import { alive, freePort, RUNTIMES, sleep, waitFor } from "../_helpers/master.ts";

const APP = `${ROOT}tests/fixtures/master/app.ts`;

async function status(
  port: number,
): Promise<{ workers: Array<Record<string, unknown>> } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/status`, {
      signal: AbortSignal.timeout(1000),
    });
    return res.ok ? await res.json() : undefined;
  } catch {
    return undefined;
  }
}

test(
  "Arbiter on Deno survives running out of file descriptors: its metrics endpoint and channel recover",
  { skip: !RUNTIMES.deno },
  async () => {
    const deno = RUNTIMES.deno!;
    const [appPort, metricsPort] = [await freePort(), await freePort()];
    const argv = [
      deno,
      "run",
      "-A",
      MAIN,
      "run",
      "-w",
      "1",
      "--metrics-bind",
      `127.0.0.1:${metricsPort}`,
    ];
    const command = [...argv, "--", deno, "run", "-A", APP].map((a) => `'${a}'`).join(" ");
    // Few descriptors, so that a burst of connections uses them all up.
    const master = spawn("sh", ["-c", `ulimit -n 96; exec ${command}`], {
      env: cleanEnv({ PORT: String(appPort) }),
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    master.stderr!.on("data", (d) => (log += d));
    const exited = new Promise((r) => master.on("exit", r));
    const held: Socket[] = [];
    try {
      await waitFor(
        "one ready worker",
        async () => (await status(metricsPort))?.workers.length === 1,
        15_000,
      );
      for (let i = 0; i < 150; i++) {
        const s = connect(metricsPort, "127.0.0.1");
        s.on("error", () => {});
        held.push(s);
      }
      await sleep(1_500);
      for (const s of held) s.destroy();
      await sleep(500);
      assert.ok(alive(master.pid!), `the master died:\n${log}`);
      await waitFor(
        "the metrics endpoint back",
        async () => (await status(metricsPort)) !== undefined,
        8_000,
      );
      // A worker that connects now is heard: the channel still accepts.
      process.kill(master.pid!, "SIGTTIN");
      const two = await waitFor("a second worker with its handshake", async () => {
        const ws = (await status(metricsPort))?.workers ?? [];
        const ok = ws.length === 2 &&
          ws.every((w) => w.state === "ready" && w.handshake_ms !== null);
        return ok ? ws : undefined;
      }, 10_000);
      assert.equal(two.length, 2);
    } finally {
      for (const s of held) s.destroy();
      master.kill("SIGTERM");
      const t = setTimeout(() => master.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(t);
    }
  },
);
