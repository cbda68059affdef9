/**
 * Starts a real `forklift run` master from the checkout, under the runtime
 * running the tests, and gives tests what they need to drive it: its log,
 * its metrics port, signals, HTTP helpers and a cleanup that kills every
 * process it started (by pid).
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import { cleanEnv, MAIN, ROOT, runtimeArgv } from "./cli.ts";
import { freePort, sleep } from "./ports.ts";
import { RUNTIMES } from "./runtime.ts";

export { freePort, RUNTIMES, sleep };

/** The argv that runs `script` as a server under `runtime`. */
export function serverArgv(runtime: "deno" | "bun", script: string): string[] {
  const exe = RUNTIMES[runtime]!;
  return runtime === "deno" ? [exe, "run", "-A", script] : [exe, script];
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  what: string,
  fn: () => T | Promise<T>,
  timeoutMs = 10_000,
  everyMs = 50,
): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`);
}

/**
 * Whether a process is running. A zombie (exited, not yet reaped because its
 * parent died and the reaper is slow or absent) does not count.
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return true;
  }
}

/** A process's peak resident memory (`VmHWM`) in MiB; 0 once it is gone. */
export function peakRssMiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** A running master under test. */
export class Master {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  exit?: { code: number | null; signal: string | null };
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** Every worker pid seen in /status, for cleanup. */
  readonly workerPids = new Set<number>();
  metricsPort?: number;
  #deadline: ReturnType<typeof setTimeout>;

  constructor(
    args: string[],
    options: {
      env?: Record<string, string>;
      cwd?: string;
      deadlineMs?: number;
      /** What runs `forklift` (a built binary); the checkout's CLI by default. */
      forklift?: string[];
      /** The master's stdout: read (default), never read ("stall"), or closed at once ("closed"). */
      stdout?: "read" | "stall" | "closed";
    },
  ) {
    const [cmd, ...pre] = options.forklift ?? runtimeArgv(MAIN);
    this.child = spawn(cmd, [...pre, "run", ...args], {
      cwd: options.cwd ?? ROOT,
      env: options.env ?? cleanEnv(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    if (options.stdout === "closed") this.child.stdout!.destroy();
    else if (options.stdout === "stall") this.child.stdout!.pause();
    else this.child.stdout!.on("data", (d) => (this.stdout += d));
    this.child.stderr!.on("data", (d) => {
      this.stderr += d;
      const m = /Serving metrics at http:\/\/[^\s]*:(\d+)\/metrics/.exec(this.stderr);
      if (m) this.metricsPort = Number(m[1]);
    });
    this.exited = new Promise((resolve) => {
      this.child.on("close", (code, signal) => {
        this.exit = { code, signal };
        clearTimeout(this.#deadline);
        resolve(this.exit);
      });
    });
    this.#deadline = setTimeout(() => this.child.kill("SIGKILL"), options.deadlineMs ?? 60_000);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Waits until the master's log has a line matching `re`. */
  waitLog(re: RegExp, timeoutMs = 15_000): Promise<RegExpExecArray> {
    return waitFor(`log ${re}`, () => {
      if (this.exit && !re.test(this.stderr)) {
        throw new Error(`master exited (${JSON.stringify(this.exit)}):\n${this.stderr}`);
      }
      return re.exec(this.stderr);
    }, timeoutMs);
  }

  /** GETs a path of the metrics endpoint. */
  async get(path: string): Promise<Response> {
    const port = this.metricsPort ?? (await this.waitLog(/Serving metrics/), this.metricsPort);
    return await fetch(`http://127.0.0.1:${port}${path}`);
  }

  /** The /status document; remembers worker pids for cleanup. */
  async status(): Promise<{ workers: Array<Record<string, unknown>>; [k: string]: unknown }> {
    const doc = await (await this.get("/status")).json();
    for (const w of doc.workers) if (typeof w.pid === "number") this.workerPids.add(w.pid);
    return doc;
  }

  /** Waits until `/status` lists exactly `n` workers, all ready; resolves to them. */
  async waitReady(
    n: number,
    timeoutMs = 15_000,
  ): Promise<Array<Record<string, unknown> & { slot: number; pid: number; state: string }>> {
    return await waitFor(`${n} ready worker(s) and no other`, async () => {
      if (this.exit) {
        throw new Error(`master exited (${JSON.stringify(this.exit)}):\n${this.stderr}`);
      }
      const ws = (await this.status()).workers as Array<
        Record<string, unknown> & { slot: number; pid: number; state: string }
      >;
      return ws.length === n && ws.every((w) => w.state === "ready") ? ws : undefined;
    }, timeoutMs);
  }

  /** Pids of the workers in state `ready`. */
  async readyPids(): Promise<number[]> {
    const doc = await this.status();
    return doc.workers.filter((w) => w.state === "ready").map((w) => w.pid as number);
  }

  /** The /metrics text. */
  async metrics(): Promise<string> {
    return await (await this.get("/metrics")).text();
  }

  /** Sends a signal to the master. */
  signal(sig: NodeJS.Signals): void {
    try {
      process.kill(this.pid, sig);
    } catch {
      // Already gone.
    }
  }

  /** Stops the master (TERM, then KILL) and kills any worker left, by pid. */
  async cleanup(): Promise<void> {
    if (!this.exit) {
      this.signal("SIGTERM");
      const t = setTimeout(() => this.signal("SIGKILL"), 5_000);
      await this.exited;
      clearTimeout(t);
    }
    for (const pid of this.workerPids) {
      if (alive(pid)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Raced with its own exit.
        }
      }
    }
  }
}

/**
 * Sums a Prometheus sample family over all label sets.
 *
 * @example
 * ```ts ignore
 * sumSamples(text, "http_server_request_duration_seconds_count");
 * ```
 */
export function sumSamples(text: string, name: string): number {
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== " " && rest[0] !== "{") continue;
    total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

/** Fetches `url` with a deadline; resolves to the body text or null on failure. */
export async function tryGet(url: string, timeoutMs = 5_000): Promise<string | null> {
  try {
    const res = await fetch(url, {
      signal: AbortSignal.timeout(timeoutMs),
      headers: { connection: "close" },
    });
    const body = await res.text();
    return res.ok ? body : null;
  } catch {
    return null;
  }
}

/**
 * GETs `path` on 127.0.0.1:`port` over a new TCP connection (no keep-alive),
 * so each request may land on a different reusePort listener.
 */
export async function getFresh(
  port: number,
  path: string,
  timeoutMs = 5_000,
): Promise<{ status: number; body: string } | null> {
  const r = await request(port, path, timeoutMs);
  return "error" in r ? null : r;
}

/** As {@linkcode getFresh}, but says why a request failed. */
function request(
  port: number,
  path: string,
  timeoutMs: number,
): Promise<{ status: number; body: string } | { error: string }> {
  return import("node:http").then(({ request }) =>
    new Promise((resolve) => {
      const req = request({
        host: "127.0.0.1",
        port,
        path,
        agent: false,
        headers: { connection: "close" },
        timeout: timeoutMs,
      }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", (e) => resolve({ error: errorName(e) }));
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (e) => resolve({ error: errorName(e) }));
      req.end();
    })
  );
}

function errorName(e: unknown): string {
  const err = e as { code?: string; message?: string };
  return err?.code ?? err?.message ?? String(e);
}

/**
 * A bounded client loop: `concurrency` loops each GET `path` over a new
 * connection, pausing `pauseMs` between requests, until {@linkcode Load.stop},
 * `total` requests in all, or `deadlineMs`.
 */
export class Load {
  ok = 0;
  failed = 0;
  /** Why requests failed: error code or HTTP status, with counts. */
  readonly errors = new Map<string, number>();
  /** When the first failures came, in ms since the load started (at most 20). */
  readonly failedAt: number[] = [];
  /** `Date.now()` when the load started. */
  readonly startedAt = Date.now();
  /** Answers per body, for routes that answer with the worker's pid. */
  readonly bodies = new Map<string, number>();
  readonly done: Promise<void>;
  #stopped = false;
  #issued = 0;

  constructor(
    port: number,
    options: {
      concurrency?: number;
      path?: string;
      pauseMs?: number;
      total?: number;
      deadlineMs?: number;
    } = {},
  ) {
    const { concurrency = 3, path = "/", pauseMs = 5, total = Infinity } = options;
    const end = Date.now() + (options.deadlineMs ?? 30_000);
    const loop = async () => {
      while (!this.#stopped && Date.now() < end && this.#issued < total) {
        this.#issued++;
        const r = await request(port, path, 5_000);
        if ("error" in r || r.status !== 200) {
          this.failed++;
          const why = "error" in r ? r.error : `HTTP ${r.status}`;
          this.errors.set(why, (this.errors.get(why) ?? 0) + 1);
          if (this.failedAt.length < 20) this.failedAt.push(Date.now() - this.startedAt);
        } else {
          this.ok++;
          this.bodies.set(r.body, (this.bodies.get(r.body) ?? 0) + 1);
        }
        if (pauseMs > 0) await sleep(pauseMs);
      }
    };
    this.done = Promise.all(Array.from({ length: concurrency }, loop)).then(() => {});
  }

  /** Stops issuing requests and waits for those in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.done;
  }

  /** `ok`, `failed` and the failure reasons, for messages. */
  toString(): string {
    return `${this.ok} ok, ${this.failed} failed ${JSON.stringify([...this.errors])}`;
  }
}

const MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req";

/**
 * `net.ipv4.tcp_migrate_req` of this network namespace, or undefined where
 * the kernel has none. Tests only read it here: those that need a value set
 * it in a namespace of their own ({@linkcode inNetns}).
 */
export function readMigrateReq(): number | undefined {
  try {
    return Number(readFileSync(MIGRATE_REQ, "utf8").trim());
  } catch {
    return undefined;
  }
}

/**
 * Starts `forklift run -w N` over a server script on a free port, with metrics
 * on an ephemeral port, and waits until every worker is ready.
 */
export async function startWorkers(
  runtime: "deno" | "bun",
  script: string,
  options: {
    workers?: number;
    harvestInterval?: number;
    args?: string[];
    env?: Record<string, string>;
    /** The workers' command, given the port; `<runtime> script` when not given. */
    command?: (port: number) => string[];
    /** What runs `forklift` (a built binary), and where; the checkout's CLI by default. */
    forklift?: string[];
    cwd?: string;
  } = {},
): Promise<{ master: Master; port: number }> {
  const workers = options.workers ?? 2;
  const port = await freePort();
  const master = new Master([
    "-w",
    String(workers),
    "--harvest-interval",
    String(options.harvestInterval ?? 0.3),
    "--metrics-bind",
    "127.0.0.1:0",
    ...(options.args ?? []),
    "--",
    ...(options.command?.(port) ?? serverArgv(runtime, script)),
  ], {
    env: cleanEnv({ PORT: String(port), ...options.env }),
    forklift: options.forklift,
    cwd: options.cwd,
  });
  try {
    await master.waitReady(workers);
  } catch (e) {
    await master.cleanup();
    throw e;
  }
  return { master, port };
}

/** Whether this process may make a network namespace of its own (root, `unshare`, `ip`). */
export const NETNS = await (async () => {
  try {
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync("unshare", ["--net", "--", "ip", "link", "set", "lo", "up"], {
      stdio: "ignore",
      timeout: 5_000,
    });
    return r.status === 0;
  } catch {
    return false;
  }
})();

/**
 * Runs `argv` in a network namespace of its own, loopback up and
 * `net.ipv4.tcp_migrate_req` set to `migrateReq` there alone (the host's
 * setting is never touched); resolves with what it printed when it exits.
 * The process is killed by pid after `timeoutMs`.
 */
export async function inNetns(
  migrateReq: 0 | 1,
  argv: string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { cleanEnv, runProcess } = await import("./cli.ts");
  const { readlinkSync } = await import("node:fs");
  // Checked, not assumed: the setting is written only where the namespace differs from ours.
  const host = readlinkSync("/proc/self/ns/net");
  const script =
    `[ "$(readlink /proc/self/ns/net)" != "$FORKLIFT_HOST_NETNS" ] && ip link set lo up && ` +
    `echo ${migrateReq} > /proc/sys/net/ipv4/tcp_migrate_req && exec "$@"`;
  return await runProcess(["unshare", "--net", "--", "sh", "-c", script, "sh", ...argv], {
    env: { ...(options.env ?? cleanEnv()), FORKLIFT_HOST_NETNS: host },
    timeoutMs: options.timeoutMs,
  });
}
