/**
 * The anchors most benchmarks share: the fixture run by the bare runtime, no
 * forklift, timed from spawn to its first answer; two of them started by
 * hand; and two started by a minimal compiled supervisor.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";
import type { BenchContext } from "./_context.ts";
import { allAnswering, FIXTURE } from "./_forklift.ts";
import { pollUntil } from "./_http.ts";
import { freePort, start, type Started, stop, type TreeCpu, treeCpuMs } from "./_process.ts";
import { type RuntimeName, serverArgv } from "./_runtimes.ts";

/** A bare server that has answered once. */
export interface BareServer {
  proc: Started;
  port: number;
  /** Milliseconds from spawn to the first answer. */
  startMs: number;
}

/** Starts the fixture under the bare runtime and waits for its first answer. */
export async function startBare(ctx: BenchContext, runtime: RuntimeName): Promise<BareServer> {
  const port = await freePort();
  const argv = serverArgv(ctx.runtimes, runtime, `${ctx.root}${FIXTURE}`);
  const t0 = performance.now();
  const proc = start(argv, { cwd: ctx.root, env: { PORT: String(port) }, deadlineMs: 120_000 });
  const hit = await pollUntil(port, () => true, t0 + 20_000, proc.done);
  if (hit === undefined) {
    await stop(proc, "SIGKILL");
    throw new Error(`bare ${runtime} server did not answer in 20 s:\n${proc.output()}`);
  }
  return { proc, port, startMs: hit.at - t0 };
}

/** Bare start-up time of `runtime` in milliseconds; the server is stopped again. */
export async function bareStartMs(ctx: BenchContext, runtime: RuntimeName): Promise<number> {
  const s = await startBare(ctx, runtime);
  await stop(s.proc, "SIGKILL");
  return s.startMs;
}

/**
 * Milliseconds from spawning two bare servers on one port (the fixture sets
 * `reusePort`) to both having answered: what two workers cost without
 * forklift on this machine's cores.
 */
export async function barePairMs(ctx: BenchContext, runtime: RuntimeName): Promise<number> {
  const port = await freePort();
  const argv = serverArgv(ctx.runtimes, runtime, `${ctx.root}${FIXTURE}`);
  const t0 = performance.now();
  const procs = [0, 1].map(() =>
    start(argv, { cwd: ctx.root, env: { PORT: String(port) }, deadlineMs: 120_000 })
  );
  try {
    const seen = new Set<number>();
    let at = 0;
    while (seen.size < 2) {
      const hit = await pollUntil(port, (pid) => !seen.has(pid), t0 + 20_000, procs[0].done);
      if (hit === undefined) throw new Error(`a bare ${runtime} pair did not answer in 20 s`);
      seen.add(hit.pid);
      at = hit.at;
    }
    return at - t0;
  } finally {
    for (const p of procs) await stop(p, "SIGKILL");
  }
}

const SUPERVISOR = "scripts/bench/fixtures/supervisor.ts";

/**
 * Path of the minimal supervisor (`fixtures/supervisor.ts` compiled with
 * `bun build --compile`, as forklift is), built when missing or older than its
 * source.
 */
export function minimalSupervisor(ctx: BenchContext): string {
  const source = `${ctx.root}${SUPERVISOR}`;
  const bin = `${ctx.root}dist/bench/supervisor`;
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(source).mtimeMs) return bin;
  mkdirSync(`${ctx.root}dist/bench`, { recursive: true });
  const r = spawnSync(ctx.runtimes.bun, [
    "build",
    "--compile",
    "--minify",
    "--bytecode",
    source,
    "--outfile",
    bin,
  ], { cwd: ctx.root, encoding: "utf8", timeout: 300_000 });
  if (r.status !== 0) throw new Error(`Cannot build ${bin}: ${r.stderr}`);
  return bin;
}

const EMPTY_PRELOAD = "scripts/bench/fixtures/empty_preload.js";

/**
 * Milliseconds from spawning the minimal supervisor over two fixture servers
 * to both having answered, and the CPU time it and its workers used until
 * then: the floor for any supervisor shipped as a compiled Bun program on
 * this machine. With `preload`, the workers also load an empty preload the
 * way forklift's are injected: the floor for any supervisor that puts code
 * into an unmodified server.
 */
export async function supervisorPairMs(
  ctx: BenchContext,
  runtime: RuntimeName,
  bin: string,
  preload = false,
): Promise<{ ms: number; cpu: TreeCpu }> {
  const port = await freePort();
  const empty = `${ctx.root}${EMPTY_PRELOAD}`;
  const server = serverArgv(ctx.runtimes, runtime, `${ctx.root}${FIXTURE}`);
  // Deno takes the preload as a flag of `run`, Bun from the workers' BUN_OPTIONS.
  if (preload && runtime === "deno") server.splice(2, 0, "--preload", empty);
  const spawnedAt = performance.now();
  const proc = start([bin, ...server], {
    cwd: ctx.root,
    env: {
      PORT: String(port),
      WORKERS: "2",
      ...(preload && runtime === "bun" ? { WORKER_BUN_OPTIONS: `--preload ${empty}` } : {}),
    },
    deadlineMs: 120_000,
  });
  try {
    const all = await allAnswering({ proc, port }, 2);
    return { ms: all.at - spawnedAt, cpu: treeCpuMs(proc.pid) };
  } finally {
    await stop(proc, "SIGTERM", 5000);
  }
}
