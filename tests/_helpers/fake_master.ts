/**
 * The test plays the forklift master: it spawns one worker with an IPC
 * channel and the forklift env, records what the worker says, and waits for
 * messages and output with deadlines. Every worker is killed by pid in
 * {@linkcode FakeMaster.close}.
 *
 * @module
 */

import process from "node:process";
import { type ChildProcess, spawn } from "node:child_process";
import type { Attributes, HarvestMessage, WorkerMessage } from "../../src/protocol/messages.ts";
import { parseWorkerMessage } from "../../src/protocol/messages.ts";
import { launch, type LaunchOptions, type WorkerRuntime } from "./runtime.ts";

/** Options of {@linkcode FakeMaster.start}. */
export interface StartOptions extends LaunchOptions {
  /** Extra env for the worker. */
  env?: Record<string, string>;
  /** Ack every harvest as it arrives (default true). */
  autoAck?: boolean;
}

/** One spawned worker, seen from the master's side. */
export class FakeMaster {
  readonly child: ChildProcess;
  readonly messages: WorkerMessage[] = [];
  readonly invalid: unknown[] = [];
  /** Points that named a series id the worker never defined. */
  unknownIds = 0;
  /** The worker's numbered series, as the master keeps them. */
  #series = new Map<number, Attributes>();
  stdout = "";
  stderr = "";
  exit: Promise<{ code: number | null; signal: string | null; at: number }>;
  #waiters = new Set<() => void>();
  #autoAck: boolean;

  private constructor(child: ChildProcess, autoAck: boolean) {
    this.child = child;
    this.#autoAck = autoAck;
    child.stdout?.setEncoding("utf8");
    child.stderr?.setEncoding("utf8");
    child.stdout?.on("data", (d: string) => {
      this.stdout += d;
      this.#wake();
    });
    child.stderr?.on("data", (d: string) => {
      this.stderr += d;
      this.#wake();
    });
    child.on("message", (raw: unknown) => {
      const parsed = parseWorkerMessage(raw);
      if (!parsed.ok) {
        this.invalid.push(raw);
      } else {
        if (parsed.message.type === "harvest") this.#resolve(parsed.message);
        this.messages.push(parsed.message);
        if (this.#autoAck && parsed.message.type === "harvest") {
          this.send({ type: "ack", v: 1, seq: parsed.message.seq });
        }
      }
      this.#wake();
    });
    child.on("error", () => {});
    this.exit = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        resolve({ code, signal, at: performance.now() });
        this.#wake();
      });
    });
  }

  /**
   * Gives every numbered point its attributes, as the master does on merge,
   * and turns the `ids` and `values` columns into such points.
   */
  #resolve(harvest: HarvestMessage): void {
    for (const m of harvest.metrics) {
      const { ids = [], values = [] } = m;
      for (let i = 0; i < ids.length; i++) m.points.push({ id: ids[i], value: values[i] });
      delete m.ids;
      delete m.values;
      for (const p of m.points) {
        if (p.id === undefined) continue;
        if (p.attributes !== undefined) this.#series.set(p.id, p.attributes);
        else if (this.#series.has(p.id)) p.attributes = this.#series.get(p.id);
        else this.unknownIds++;
      }
    }
  }

  /** Spawns `file` on `rt` as a forklift worker of this process. */
  static start(rt: WorkerRuntime, file: string, options: StartOptions = {}): FakeMaster {
    const { args, env } = launch(rt, file, options);
    const child = spawn(rt.exec, args, {
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      env: {
        ...process.env,
        NO_COLOR: "1",
        FORKLIFT_MASTER_PID: String(process.pid),
        FORKLIFT_WORKER_ID: "1",
        FORKLIFT_WORKERS: "1",
        ...env,
        ...options.env,
      },
    });
    return new FakeMaster(child, options.autoAck ?? true);
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Sends a master message. */
  send(message: Record<string, unknown>): void {
    if (this.child.connected) this.child.send(message);
  }

  /** Sends a `welcome` with test-friendly defaults. */
  welcome(overrides: Record<string, unknown> = {}): void {
    this.send({
      type: "welcome",
      v: 1,
      worker: 1,
      generation: 1,
      harvest_interval_ms: 200,
      heartbeat_ms: 0,
      resource: { "service.name": "fixture" },
      ...overrides,
    });
  }

  /** Waits until `check` returns a value (not undefined), or fails after `ms`. */
  until<T>(what: string, check: () => T | undefined, ms = 5000): Promise<T> {
    return new Promise((resolve, reject) => {
      const done = (fn: () => void) => {
        clearTimeout(timer);
        this.#waiters.delete(poll);
        fn();
      };
      const poll = () => {
        let value: T | undefined;
        try {
          value = check();
        } catch (error) {
          return done(() => reject(error));
        }
        if (value !== undefined) done(() => resolve(value as T));
      };
      const timer = setTimeout(
        () =>
          done(() =>
            reject(
              new Error(
                `Timed out after ${ms} ms waiting for ${what}; got ${
                  JSON.stringify(this.messages.map((m) => m.type))
                }\nstdout: ${this.stdout}\nstderr: ${this.stderr}`,
              ),
            )
          ),
        ms,
      );
      this.#waiters.add(poll);
      poll();
    });
  }

  /** Waits for the n-th (1-based) message of `type`. */
  message<T extends WorkerMessage["type"]>(
    type: T,
    nth = 1,
    ms?: number,
  ): Promise<Extract<WorkerMessage, { type: T }>> {
    return this.until(`${type} #${nth}`, () => {
      const all = this.messages.filter((m) => m.type === type);
      return all[nth - 1] as Extract<WorkerMessage, { type: T }> | undefined;
    }, ms);
  }

  /** Waits for a stdout line starting with `prefix` and returns the rest of it. */
  line(prefix: string, ms?: number): Promise<string> {
    return this.until(`stdout line "${prefix}"`, () => {
      const line = this.stdout.split("\n").find((l) => l.startsWith(prefix));
      return line?.slice(prefix.length);
    }, ms);
  }

  /** Harvests received so far. */
  harvests(): HarvestMessage[] {
    return this.messages.filter((m): m is HarvestMessage => m.type === "harvest");
  }

  /** Sum of a histogram's counts (or a counter's values) over all harvests. */
  total(name: string, match: (attrs: Record<string, unknown>) => boolean = () => true): number {
    let sum = 0;
    for (const h of this.harvests()) {
      for (const m of h.metrics) {
        if (m.name !== name) continue;
        for (const p of m.points) {
          if (match(p.attributes ?? {})) sum += p.count ?? p.value ?? 0;
        }
      }
    }
    return sum;
  }

  /** Kills the worker by pid if it still runs, and waits for it to go. */
  async close(): Promise<void> {
    const pid = this.child.pid;
    if (this.child.exitCode === null && this.child.signalCode === null && pid !== undefined) {
      try {
        process.kill(pid, "SIGKILL");
      } catch { /* already gone */ }
    }
    await Promise.race([this.exit, new Promise((r) => setTimeout(r, 2000))]);
    this.child.stdout?.destroy();
    this.child.stderr?.destroy();
  }
}
