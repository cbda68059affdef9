/**
 * Rolls `forklift run -w 2` three times (`HUP`) under load, or recycles its
 * workers by `--max-requests`, and prints what the client saw as one JSON
 * line. Run by {@linkcode rollInNetns} inside a
 * network namespace of its own, where `net.ipv4.tcp_migrate_req` was set
 * for this run alone; the master, its workers and the client all live in it.
 *
 * Reads its settings from `FORKLIFT_ROLL` (JSON): the workers' runtime, the
 * client (`keepalive` or `fresh`) and its connections.
 *
 * @module
 */
import { readFileSync, readlinkSync } from "node:fs";
import process from "node:process";
import { ROOT } from "./cli.ts";
import { KeepAliveLoad } from "./keepalive_load.ts";
import { Load, RUNTIMES, sleep, startWorkers, sumSamples, waitFor } from "./master.ts";

/** What one roll is asked to do. */
export interface RollPlan {
  runtime: "deno" | "bun";
  client: "keepalive" | "fresh";
  connections: number;
  /** The server: `Deno.serve`/`Bun.serve` (default), Express on `node:http`, or `deno serve`. */
  server?: "fetch" | "node" | "deno-serve";
  /** Recycle workers after this many requests (500 requests in all, no `HUP`) instead of rolling them. */
  maxRequests?: number;
}

/** What one roll measured. */
export interface RollResult {
  migrateReq: number;
  ok: number;
  failed: number;
  errors: Array<[string, number]>;
  counted: number;
  reloads: number;
  recycles: number;
  crashes: number;
  opened?: number;
  /**
   * When anything failed: when each failure, `HUP` and finished reload came,
   * in ms since the load started, to tell a failure in a drain from one
   * elsewhere.
   */
  timeline?: string;
}

const APPS = {
  fetch: { script: `${ROOT}tests/fixtures/master/app.ts`, path: "/" },
  node: { script: `${ROOT}tests/fixtures/frameworks/express_app.ts`, path: "/api/items/1" },
  "deno-serve": { script: `${ROOT}tests/fixtures/master/parallel_app.ts`, path: "/" },
};
const COUNT = "http_server_request_duration_seconds_count";

function restarts(text: string, reason: string): number {
  const m = new RegExp(`^forklift_worker_restarts_total\\{reason="${reason}"\\} (\\d+)$`, "m")
    .exec(text);
  return m ? Number(m[1]) : 0;
}

async function roll(plan: RollPlan): Promise<RollResult> {
  const server = plan.server ?? "fetch";
  const { script, path } = APPS[server];
  const { master, port } = await startWorkers(plan.runtime, script, {
    workers: 2,
    harvestInterval: 0.5,
    args: [
      "--graceful-timeout",
      "10",
      ...(plan.maxRequests === undefined
        ? []
        : ["--max-requests", String(plan.maxRequests), "--max-requests-jitter", "10"]),
    ],
    command: server === "deno-serve"
      ? (port) => [RUNTIMES.deno!, "serve", "-A", "--port", String(port), script]
      : undefined,
  });
  try {
    // Recycling every 50 requests wants a gentle client: 500 requests, 8 ms apart.
    const recycling = plan.maxRequests !== undefined;
    const shape = recycling
      ? { pauseMs: 8, total: 500, deadlineMs: 40_000 }
      : { pauseMs: 0, deadlineMs: 40_000 };
    const load = plan.client === "keepalive"
      ? new KeepAliveLoad(port, { connections: plan.connections, path, ...shape })
      : new Load(port, { concurrency: plan.connections, path, ...shape });
    await (recycling ? load.done : sleep(300));
    const seen = new Set<number>();
    const events: string[] = [];
    const at = () => Date.now() - load.startedAt;
    for (let round = 1; round <= (recycling ? 0 : 3); round++) {
      const before = (await master.waitReady(2)).map((w) => w.pid);
      before.forEach((p) => seen.add(p));
      master.signal("SIGHUP");
      events.push(`HUP ${round} at ${at()}`);
      await waitFor(`reload ${round}`, async () => {
        const ws = (await master.status()).workers as Array<{ pid: number; state: string }>;
        return ws.length === 2 && ws.every((w) => w.state === "ready" && !seen.has(w.pid));
      }, 20_000);
      events.push(`reload ${round} ready at ${at()}`);
      await sleep(200);
    }
    await load.stop();
    let text = "";
    let counted = NaN;
    await waitFor("every answer counted", async () => {
      text = await master.metrics();
      counted = sumSamples(text, COUNT);
      return counted >= load.ok;
    }, 5_000).catch(() => {});
    return {
      migrateReq: Number(readFileSync("/proc/sys/net/ipv4/tcp_migrate_req", "utf8")),
      ok: load.ok,
      failed: load.failed,
      errors: [...load.errors],
      counted,
      reloads: restarts(text, "reload"),
      recycles: restarts(text, "max_requests"),
      crashes: restarts(text, "crash"),
      opened: load instanceof KeepAliveLoad ? load.opened : undefined,
      timeline: load.failed === 0
        ? undefined
        : `failures at ${load.failedAt.join(", ")} ms; ${events.join(", ")} ms`,
    };
  } finally {
    await master.cleanup();
  }
}

if (import.meta.main) {
  // It reads the namespace's tcp_migrate_req and loads the loopback it shares
  // with nothing else: on the host's network it would measure the host.
  const host = process.env.FORKLIFT_HOST_NETNS;
  if (host === undefined || readlinkSync("/proc/self/ns/net") === host) {
    console.error(
      "roll_under_load.ts runs only inside rollInNetns() (a network namespace of its own)",
    );
    process.exit(2);
  }
  const plan = JSON.parse(process.env.FORKLIFT_ROLL ?? "{}") as RollPlan;
  const result = await roll(plan);
  console.log(JSON.stringify(result));
  process.exit(0);
}
