/**
 * Processes the benchmarks start: every one gets a deadline after which it is
 * SIGKILLed, and {@linkcode killAll} ends whatever is left, by pid, together
 * with the children a forklift master spawned.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";
// Tests and benchmarks find ports and wait the same way.
import { freePort, sleep } from "../../tests/_helpers/ports.ts";

export { freePort, sleep };

/** A started process with its recent output, for error messages. */
export interface Started {
  child: ChildProcess;
  pid: number;
  /** The last few kilobytes of stdout and stderr. */
  output(): string;
  /** Resolves with the exit code (or 128 + signal) when the process exits. */
  exited: Promise<number>;
  /** Whether the process has exited. */
  done(): boolean;
}

const live = new Map<number, Started>();
const extraPids = new Set<number>();

/**
 * Spawns `argv` with `env` added to this process's, kills it after
 * `deadlineMs` whatever happens, and keeps the tail of its output.
 */
export function start(
  argv: string[],
  options: { env?: Record<string, string>; cwd?: string; deadlineMs?: number } = {},
): Started {
  const env: Record<string, string | undefined> = { ...process.env, ...options.env };
  // Settings from the caller's shell (forklift rejects unknown FORKLIFT_*
  // variables, and a collector must not receive benchmark data) stay out.
  for (const k of Object.keys(env)) {
    if ((k.startsWith("FORKLIFT_") || k.startsWith("OTEL_")) && !(k in (options.env ?? {}))) {
      delete env[k];
    }
  }
  const child = spawn(argv[0], argv.slice(1), {
    cwd: options.cwd,
    env: env as Record<string, string>,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let tail = "";
  const keep = (d: Uint8Array) => {
    tail = (tail + new TextDecoder().decode(d)).slice(-4096);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<number>((resolve) => {
    child.on("error", (e) => {
      tail += `\n${e.message}`;
      resolve(127);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      live.delete(child.pid ?? -1);
      resolve(code ?? 128 + (signal === "SIGKILL" ? 9 : 15));
    });
  });
  const timer = setTimeout(
    () => killTree(child.pid ?? -1, "SIGKILL"),
    options.deadlineMs ?? 120_000,
  );
  let finished = false;
  exited.then(() => finished = true);
  const started: Started = {
    child,
    pid: child.pid ?? -1,
    output: () => tail,
    exited,
    done: () => finished,
  };
  if (child.pid !== undefined) live.set(child.pid, started);
  return started;
}

/** Remembers a pid (a forklift worker) for {@linkcode killAll}. */
export function track(pid: number): void {
  if (pid > 0) extraPids.add(pid);
}

/** Sends `signal` to `pid`, ignoring a process that is already gone. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(pid, sig);
  } catch {
    // Already exited.
  }
}

/** Whether `pid` is a live process (not a zombie). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Direct children of `pid`, from their parent pid in `/proc`. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // Exited while we looked.
    }
  }
  return out;
}

/**
 * CPU time `pid` has used so far, all its threads, in milliseconds: Linux's
 * per-thread `schedstat`, in nanoseconds (`/proc/PID/stat` counts 10 ms
 * ticks). 0 where it cannot be read.
 */
export function cpuMs(pid: number): number {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  let ns = 0;
  for (const task of tasks) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // The thread ended while we looked.
    }
  }
  return ns / 1e6;
}

/** CPU time of a process and of its children, in milliseconds. */
export interface TreeCpu {
  own: number;
  children: number;
}

/**
 * CPU time used so far by `pid` and by its children together, read one right
 * after the other (a master and its workers, at one moment).
 */
export function treeCpuMs(pid: number): TreeCpu {
  const own = cpuMs(pid);
  let kids: number[];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/)
      .filter((x) => x !== "").map(Number);
  } catch {
    kids = childrenOf(pid);
  }
  return { own, children: kids.reduce((sum, kid) => sum + cpuMs(kid), 0) };
}

/** Signals `pid` and every child it has now (a master and its workers). */
export function killTree(pid: number, sig: NodeJS.Signals): void {
  if (pid <= 0) return;
  const kids = childrenOf(pid);
  signal(pid, sig);
  for (const k of kids) signal(k, sig);
}

/**
 * Stops a started process: `sig` first, SIGKILL to it and its children if it
 * has not exited after `graceMs`; resolves once it and `pids` are gone.
 */
export async function stop(
  p: Started,
  sig: NodeJS.Signals = "SIGTERM",
  graceMs = 3000,
  pids: number[] = [],
): Promise<void> {
  const kids = [...new Set([...childrenOf(p.pid), ...pids])];
  signal(p.pid, sig);
  const late = await Promise.race([p.exited.then(() => false), sleep(graceMs).then(() => true)]);
  if (late) killTree(p.pid, "SIGKILL");
  await p.exited;
  const end = performance.now() + graceMs;
  for (const k of kids) {
    while (alive(k) && performance.now() < end) await sleep(5);
    if (alive(k)) signal(k, "SIGKILL");
  }
}

/** SIGKILLs every process started here and still running, and their children. */
export function killAll(): void {
  for (const p of live.values()) killTree(p.pid, "SIGKILL");
  for (const pid of extraPids) if (alive(pid)) signal(pid, "SIGKILL");
}

/**
 * Runs an in-process benchmark loop (`scripts/bench/*_loop.ts`) under one
 * runtime and parses the JSON line it ends with.
 *
 * @example
 * ```ts ignore
 * const r = await runLoop<{ ms: number }>(ctx, "bun", "export_loop.ts", ["--rounds", "11"]);
 * ```
 */
export async function runLoop<T>(
  ctx: { root: string; runtimes: { deno: string; bun: string } },
  runtime: "deno" | "bun",
  name: string,
  args: string[],
): Promise<T> {
  const script = `${ctx.root}scripts/bench/${name}`;
  const argv = runtime === "deno"
    ? [ctx.runtimes.deno, "run", "-A", script, ...args]
    : [ctx.runtimes.bun, script, ...args];
  const p = start(argv, { cwd: ctx.root, deadlineMs: 300_000 });
  const code = await p.exited;
  const line = p.output().trim().split("\n").pop() ?? "";
  if (code !== 0 || !line.startsWith("{")) {
    throw new Error(`${name} under ${runtime} exited with ${code}:\n${p.output()}`);
  }
  return JSON.parse(line);
}
