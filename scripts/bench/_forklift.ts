/**
 * Starting forklift for the benchmarks: the binary (built when missing) or the
 * checkout under Deno or Bun, always over the fixture server, on fresh ports.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import process from "node:process";
import type { BenchContext } from "./_context.ts";
import { pollUntil } from "./_http.ts";
import { freePort, start, type Started, stop, track } from "./_process.ts";
import { type RuntimeName, type Runtimes, serverArgv } from "./_runtimes.ts";

/** How the master is started: the shipped binary, or the checkout under a runtime. */
export type MasterVia = "binary" | RuntimeName;

/** Path of the fixture server, from the repository root. */
export const FIXTURE = "scripts/bench/fixtures/hello.ts";

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${e.name}`;
    const t = e.isDirectory() ? newestSource(path) : statSync(path).mtimeMs;
    if (t > newest) newest = t;
  }
  return newest;
}

/**
 * Returns the path of `dist/forklift`, building it (`scripts/build.ts`) when
 * it is missing or `rebuild` is set. Warns when the sources are newer.
 */
export function forkliftBinary(
  root: string,
  runtimes: Runtimes,
  rebuild: boolean,
  log: (line: string) => void,
): string {
  const bin = `${root}dist/forklift`;
  if (rebuild || !existsSync(bin)) {
    log(`building ${bin}`);
    const r = spawnSync(runtimes.deno, ["run", "-A", `${root}scripts/build.ts`], {
      cwd: root,
      env: { ...process.env, FORKLIFT_TEST_BUN: runtimes.bun },
      stdio: "inherit",
      timeout: 600_000,
    });
    if (r.status !== 0 || !existsSync(bin)) throw new Error("Cannot build dist/forklift");
  } else if (newestSource(`${root}src`) > statSync(bin).mtimeMs) {
    log(`note: ${bin} is older than src/: add --build to measure the current sources`);
  }
  return bin;
}

/** A running master with the ports it was given. */
export interface Master {
  proc: Started;
  /** Port the workers' servers share. */
  port: number;
  /** Port of the master's `/metrics` and `/status`. */
  metricsPort: number;
  /** Time the master was spawned (`performance.now()`). */
  spawnedAt: number;
}

/** The argv that starts a master `via` the binary or the checkout. */
export function masterArgv(ctx: BenchContext, via: MasterVia): string[] {
  const main = `${ctx.root}src/cli/main.ts`;
  if (via === "binary") return [ctx.forklift];
  if (via === "deno") return [ctx.runtimes.deno, "run", "-A", main];
  return [ctx.runtimes.bun, main];
}

/**
 * Spawns `forklift run -w N [--no-inject] -- <runtime> fixture` with the app
 * and metrics on fresh ports of 127.0.0.1.
 */
export async function startMaster(
  ctx: BenchContext,
  options: {
    runtime: RuntimeName;
    workers: number;
    inject?: boolean;
    via?: MasterVia;
    /** Runs the master through this command first (e.g. `taskset -c 1`). */
    prefix?: string[];
    /** The app, from the repository root; {@linkcode FIXTURE} by default. */
    fixture?: string;
  },
): Promise<Master> {
  const port = await freePort();
  const metricsPort = await freePort();
  const argv = [
    ...(options.prefix ?? []),
    ...masterArgv(ctx, options.via ?? "binary"),
    "run",
    "-w",
    String(options.workers),
    "--metrics-bind",
    `127.0.0.1:${metricsPort}`,
    ...(options.inject === false ? ["--no-inject"] : []),
    "--",
    ...serverArgv(ctx.runtimes, options.runtime, `${ctx.root}${options.fixture ?? FIXTURE}`),
  ];
  const spawnedAt = performance.now();
  const proc = start(argv, { cwd: ctx.root, env: { PORT: String(port) }, deadlineMs: 300_000 });
  return { proc, port, metricsPort, spawnedAt };
}

/**
 * Starts a master as {@linkcode startMaster} does, runs `fn` on it and stops
 * it (SIGTERM, then SIGKILL after 5 s) whatever happens; an error carries the
 * master's last output.
 */
export async function withMaster<T>(
  ctx: BenchContext,
  options: Parameters<typeof startMaster>[1],
  fn: (m: Master) => Promise<T>,
): Promise<T> {
  const m = await startMaster(ctx, options);
  try {
    return await fn(m);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${m.proc.output()}`);
  } finally {
    await stop(m.proc, "SIGTERM", 5000);
  }
}

/**
 * Polls the app port with new connections until `n` distinct pids have
 * answered; resolves to the time the last of them answered and the pids.
 */
export async function allAnswering(
  m: { port: number; proc: Pick<Started, "done"> },
  n: number,
  timeoutMs = 20_000,
): Promise<{ at: number; pids: number[] }> {
  const pids = new Set<number>();
  const deadline = performance.now() + timeoutMs;
  const port = m.port;
  for (;;) {
    const hit = await pollUntil(port, (pid) => !pids.has(pid), deadline, m.proc.done);
    if (hit === undefined) throw new Error(`only ${pids.size} of ${n} workers answered on ${port}`);
    pids.add(hit.pid);
    track(hit.pid);
    if (pids.size >= n) return { at: hit.at, pids: [...pids] };
  }
}
