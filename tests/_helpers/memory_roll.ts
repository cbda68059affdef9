/**
 * Runs `forklift run -w 2 --max-memory` over an app that leaks while it
 * serves, under keep-alive load, and prints what the client and the master
 * saw as one JSON line. Run by the test inside a network namespace of its own
 * ({@linkcode inNetns}), where `net.ipv4.tcp_migrate_req` is 1 for this run
 * alone: the roll then loses nothing, as a HUP's does.
 *
 * The limit is the app's own resident memory, measured once without forklift
 * and without load, plus {@linkcode HEADROOM_MIB}: what the leak, not the
 * runtime, puts over it.
 *
 * Reads the runtime from `FORKLIFT_MEMORY_ROLL` (`deno` or `bun`).
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import process from "node:process";
import { cleanEnv, ROOT } from "./cli.ts";
import { KeepAliveLoad } from "./keepalive_load.ts";
import { freePort, serverArgv, sleep, startWorkers, tryGet, waitFor } from "./master.ts";

/** The leaking app. */
export const LEAK_APP = `${ROOT}tests/fixtures/master/leak_app.ts`;
/** The limit is the bare app's resident memory plus this. */
export const HEADROOM_MIB = 40;
/** Workers of the master under test. */
export const WORKERS = 2;

/** What one run measured. */
export interface MemoryRollResult {
  migrateReq: number;
  baselineMiB: number;
  limitMiB: number;
  ok: number;
  failed: number;
  errors: Array<[string, number]>;
  /** `forklift_worker_restarts_total` by reason, once the load stopped. */
  restarts: Record<string, number>;
  /** The master's "over max_memory …: rolling it" lines. */
  rolledLines: string[];
  /** Its lines about a replacement over the limit right after its start. */
  heldLines: number;
  /** Pids of the first workers, and of those ready at the end. */
  before: number[];
  after: number[];
}

/** The app's resident memory, alone and idle once it answers, in MiB. */
async function bareRssMiB(runtime: "deno" | "bun"): Promise<number> {
  const port = await freePort();
  const [cmd, ...args] = serverArgv(runtime, LEAK_APP);
  const child: ChildProcess = spawn(cmd, args, {
    env: cleanEnv({ PORT: String(port), APP_LEAK_MIB: "0" }),
    stdio: "ignore",
  });
  const deadline = setTimeout(() => child.kill("SIGKILL"), 15_000);
  try {
    await waitFor("the bare app answering", () => tryGet(`http://127.0.0.1:${port}/`), 10_000);
    await sleep(200);
    const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024;
  } finally {
    clearTimeout(deadline);
    child.kill("SIGKILL");
  }
}

function restartsOf(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^forklift_worker_restarts_total\{reason="(\w+)"\} (\d+)$/gm)) {
    out[m[1]] = Number(m[2]);
  }
  return out;
}

async function run(runtime: "deno" | "bun"): Promise<MemoryRollResult> {
  const baselineMiB = await bareRssMiB(runtime);
  const limitMiB = Math.ceil(baselineMiB + HEADROOM_MIB);
  const { master, port } = await startWorkers(runtime, LEAK_APP, {
    workers: WORKERS,
    harvestInterval: 0.5,
    args: ["--max-memory", `${limitMiB}M`, "--graceful-timeout", "10"],
  });
  try {
    const before = (await master.waitReady(WORKERS)).map((w) => w.pid);
    const load = new KeepAliveLoad(port, { connections: 8, pauseMs: 2, deadlineMs: 25_000 });
    // Every first worker rolled, and its replacement ready.
    await waitFor("each first worker rolled for memory", async () => {
      const ws = (await master.status()).workers as Array<{ pid: number; state: string }>;
      const fresh = ws.length === WORKERS &&
        ws.every((w) => w.state === "ready" && !before.includes(w.pid));
      return fresh && (restartsOf(await master.metrics()).memory ?? 0) >= WORKERS;
    }, 20_000);
    // The replacements leak too, past the limit at once: they are held, not rolled.
    await master.waitLog(/right after its start/, 8_000).catch(() => {});
    await sleep(1_000);
    await load.stop();
    const after = (await master.status()).workers.map((w) => w.pid as number);
    const log = master.stderr;
    return {
      migrateReq: Number(readFileSync("/proc/sys/net/ipv4/tcp_migrate_req", "utf8")),
      baselineMiB: Math.round(baselineMiB * 10) / 10,
      limitMiB,
      ok: load.ok,
      failed: load.failed,
      errors: [...load.errors],
      restarts: restartsOf(await master.metrics()),
      rolledLines: log.split("\n").filter((l) => / over max_memory .*: rolling it/.test(l)),
      heldLines: log.split("\n").filter((l) => /right after its start/.test(l)).length,
      before,
      after,
    };
  } finally {
    await master.cleanup();
  }
}

if (import.meta.main) {
  // It reads the namespace's tcp_migrate_req: on the host's network it would read the host's.
  const host = process.env.FORKLIFT_HOST_NETNS;
  if (host === undefined || readlinkSync("/proc/self/ns/net") === host) {
    console.error("memory_roll.ts runs only inside inNetns() (a network namespace of its own)");
    process.exit(2);
  }
  const runtime = process.env.FORKLIFT_MEMORY_ROLL === "bun" ? "bun" : "deno";
  console.log(JSON.stringify(await run(runtime)));
  process.exit(0);
}
