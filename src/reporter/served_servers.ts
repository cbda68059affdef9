/**
 * The servers a worker's wrapped `serve` calls started: counted in the HTTP
 * metrics, the first one's address for `ready`, and drained (bounded in
 * time, then aborted) when the worker stops.
 *
 * @module
 */

import type { ServedServer } from "../runtime/serve.ts";
import type { HttpMetrics } from "./http.ts";

/**
 * The one-shot timers draining needs. They need not keep the process alive:
 * the servers draining do (and in Deno a first `setTimeout` would add about
 * 1.7 MiB to every worker that drains).
 */
export interface DrainTimers {
  setLooseTimeout(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

/**
 * The servers listening in this process.
 *
 * @example Count a server and drain it
 * ```ts
 * import assert from "node:assert/strict";
 * import { ServedServers } from "./served_servers.ts";
 * import { HttpMetrics } from "./http.ts";
 * import { Storage } from "./storage.ts";
 * const http = new HttpMetrics(new Storage());
 * const servers = new ServedServers(http, {
 *   setLooseTimeout: (fn, ms) => setTimeout(fn, ms),
 *   clearTimer: (t) => clearTimeout(t as number),
 * });
 * let drained = false;
 * servers.add({ addr: "127.0.0.1:8000", drain: async () => void (drained = true), abort() {} });
 * await servers.drain(1000);
 * assert.deepEqual([servers.size, servers.addr, http.wrappedServers, drained], [1, "127.0.0.1:8000", 1, true]);
 * ```
 */
export class ServedServers {
  readonly #servers = new Set<ServedServer>();
  readonly #http: HttpMetrics;
  readonly #timers: DrainTimers;
  #addr: string | undefined;

  /** Counts servers in `http`; bounds draining with `timers`. */
  constructor(http: HttpMetrics, timers: DrainTimers) {
    this.#http = http;
    this.#timers = timers;
  }

  /** Servers listening now. */
  get size(): number {
    return this.#servers.size;
  }

  /** The address of the first server that listened, if any. */
  get addr(): string | undefined {
    return this.#addr;
  }

  /** Records a server that listens. */
  add(server: ServedServer): void {
    if (!this.#servers.has(server)) {
      this.#servers.add(server);
      this.#http.wrappedServers++;
    }
    this.#addr ??= server.addr;
  }

  /** Forgets a server that closed. */
  delete(server: ServedServer): void {
    if (this.#servers.delete(server)) this.#http.wrappedServers--;
  }

  /** Drains every server, aborting them all once `ms` have passed. */
  async drain(ms: number): Promise<void> {
    const servers = [...this.#servers];
    if (servers.length === 0) return;
    const drained = await this.#bounded(Promise.all(servers.map((s) => s.drain())), ms);
    if (!drained) {
      for (const s of servers) {
        try {
          s.abort();
        } catch { /* already closed */ }
      }
    }
  }

  /** Resolves true when `work` settles, false when `ms` pass first. */
  #bounded(work: Promise<unknown>, ms: number): Promise<boolean> {
    const timers = this.#timers;
    return new Promise((resolve) => {
      const timer = timers.setLooseTimeout(() => resolve(false), ms);
      const done = () => {
        timers.clearTimer(timer);
        resolve(true);
      };
      work.then(done, done);
    });
  }
}
