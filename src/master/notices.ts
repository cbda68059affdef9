/**
 * Words the supervisor's notices for the master's log. The supervisor says
 * what happened; this file alone says how it reads.
 *
 * @module
 */
import { bracketHost } from "../protocol/host_port.ts";
import { describeExit } from "./exit_status.ts";
import type { Notice, WorkerRef } from "./supervisor.ts";

/** A log record: level, logtape message template and its properties. */
export interface LogLine {
  level: "info" | "warn" | "error";
  message: string;
  props: Record<string, unknown>;
}

/** What the wording needs to know of a worker beyond its ref. */
export interface WorkerFacts {
  pid: number | null;
  addr?: string;
}

/**
 * The log line for a notice.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { noticeLine } from "./notices.ts";
 * const line = noticeLine({ kind: "scaled", workers: 3 }, () => undefined);
 * assert.ok(line.message === "Workers: {n}" && line.props.n === 3);
 * ```
 */
export function noticeLine(
  notice: Notice,
  facts: (worker: WorkerRef) => WorkerFacts | undefined,
): LogLine {
  const at = (level: LogLine["level"]) => (message: string, props = {}): LogLine => ({
    level,
    message,
    props,
  });
  const [info, warn, error] = [at("info"), at("warn"), at("error")];
  const pid = (w: WorkerRef) => facts(w)?.pid ?? null;
  switch (notice.kind) {
    case "ready": {
      const w = notice.worker;
      const addr = facts(w)?.addr;
      return info("Worker {slot} (pid {pid}, generation {gen}) ready{addr} in {ms} ms", {
        slot: w.slot,
        pid: pid(w),
        gen: w.generation,
        addr: addr ? ` on ${addr}` : "",
        ms: Math.round(notice.afterMs),
      });
    }
    case "noReadyReport":
      return warn("Worker {slot} reported no ready server in {s} s; taking it as ready", {
        slot: notice.worker.slot,
        s: notice.afterMs / 1000,
      });
    case "booted":
      return info("All {n} worker(s) ready", { n: notice.workers });
    case "exited":
      return info(
        `Worker {slot} (pid {pid}) exited with {status}${notice.reason ? " ({reason})" : ""}`,
        {
          slot: notice.worker.slot,
          pid: pid(notice.worker),
          status: describeExit(notice.code, notice.signal),
          reason: notice.reason,
        },
      );
    case "programExited":
      return info("Program exited with {status}", {
        status: describeExit(notice.code, notice.signal),
      });
    case "bootFailed": {
      const c = notice.cause;
      const line = `Worker ${notice.worker.slot} failed to boot: ${
        "exit" in c
          ? `exited with ${describeExit(c.exit.code, c.exit.signal)} before it was ready`
          : `cannot start its process (${c.spawn})`
      }`;
      const then = notice.then;
      switch (then.action) {
        case "stop":
          return error("{line}; stopping", { line });
        case "keep":
          return error("{line}; keeping generation {gen} in slot {slot}", {
            line,
            gen: then.generation ?? "-",
            slot: notice.worker.slot,
          });
        case "giveUp":
          return error("{line}, {n} times in a row; stopping", { line, n: then.failures });
        case "respawn":
          return warn("{line}; respawning in {ms} ms", { line, ms: then.delayMs });
      }
      break;
    }
    case "crashed": {
      const oom = notice.signal === "SIGKILL"
        ? " (SIGKILL: killed by the OOM killer or by hand?)"
        : "";
      const line = `Worker ${notice.worker.slot} (pid ${pid(notice.worker)}) crashed: exited with ${
        describeExit(notice.code, notice.signal)
      }${oom}`;
      return warn("{line}; respawning in {ms} ms", { line, ms: notice.delayMs });
    }
    case "silent":
      return error("Worker {slot} (pid {pid}) sent nothing for {s} s: killing it", {
        slot: notice.worker.slot,
        pid: pid(notice.worker),
        s: Math.round(notice.silentMs / 1000),
      });
    case "recycling":
      return info("Worker {slot} served {n} requests (limit {limit}): recycling it", {
        slot: notice.worker.slot,
        n: notice.requests,
        limit: notice.limit,
      });
    case "overMemory":
      return warn("Worker {slot} uses {used} MiB, over max_memory {limit} MiB: rolling it", {
        slot: notice.worker.slot,
        used: mib(notice.bytes),
        limit: mib(notice.limit),
      });
    case "overMemoryAtStart":
      return warn(
        "Worker {slot} uses {used} MiB right after its start, over max_memory {limit} MiB: the app needs more than the limit (raise max_memory?); its slot is rolled again in {s} s at the soonest",
        {
          slot: notice.worker.slot,
          used: mib(notice.bytes),
          limit: mib(notice.limit),
          s: Math.ceil(notice.holdMs / 1000),
        },
      );
    case "scaled":
      return info("Workers: {n}", { n: notice.workers });
    case "portShared": {
      const { port, listeners } = notice.share;
      return error(
        "Port {port} is already served by another program ({n} listening socket(s) on {addrs}, uid {uids}): the workers would share its traffic; stop it or give the app another port",
        {
          port,
          n: listeners.length,
          addrs: [...new Set(listeners.map((o) => bracketHost(o.address)))]
            .join(", "),
          uids: [...new Set(listeners.map((o) => o.uid))].join(", "),
        },
      );
    }
    case "atFloor":
      return info("Not going below one worker");
    case "reloading":
      return info("Reloading: rolling {n} worker(s)", { n: notice.workers });
    case "reloaded":
      return info("Reloaded: all {n} worker(s) run the new configuration", { n: notice.workers });
    case "stopping":
      return notice.mode === "graceful"
        ? info("Stopping gracefully (up to {s} s)", { s: notice.graceMs / 1000 })
        : info("Stopping quickly");
  }
  throw new TypeError(`Unknown notice ${JSON.stringify(notice)}`);
}

/** Bytes as whole MiB (a tenth below 10), as a memory limit reads. */
function mib(bytes: number): number {
  const m = bytes / 1024 / 1024;
  return m < 10 ? Math.round(m * 10) / 10 : Math.round(m);
}
