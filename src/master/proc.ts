/**
 * Linux's `/proc`, as the master's process sampler reads it: pure parsers of
 * `/proc/PID/stat`, `/proc/PID/statm` and `/proc/PID/status`, and a reader
 * that lists processes and reads their `stat` with `node:fs`.
 *
 * @module
 */
import { readdirSync, readFileSync } from "node:fs";

/** The fields of `/proc/PID/stat` the sampler uses. Times in clock ticks, memory in pages. */
export interface ProcStat {
  pid: number;
  /** The process group. */
  pgrp: number;
  /** User-mode CPU time, in clock ticks. */
  utime: number;
  /** Kernel-mode CPU time, in clock ticks. */
  stime: number;
  /** When it started, in clock ticks after boot: with `pid`, names one process over time. */
  starttime: number;
  /** Resident set size, in pages. */
  rss: number;
}

/**
 * Parses one `/proc/PID/stat` line, or returns undefined when it is not one.
 * The command name (second field) may hold anything, spaces and parentheses
 * included: the fields are counted from its last `)`.
 *
 * @example A command name with a space and a parenthesis
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseProcStat } from "./proc.ts";
 * const line = "42 (a) b) S 1 42 42 0 -1 0 0 0 0 0 150 25 0 0 20 0 1 0 900 1000 77 0";
 * const s = parseProcStat(line)!;
 * assert.equal(s.pgrp, 42);
 * assert.equal(s.utime, 150);
 * assert.equal(s.rss, 77);
 * ```
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf(" (");
  const close = text.lastIndexOf(")");
  if (open <= 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open));
  // After ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt
  // cmajflt utime stime cutime cstime priority nice threads itreal starttime vsize rss
  const f = text.slice(close + 2).trim().split(/\s+/);
  if (f.length < 22) return undefined;
  const n = (i: number) => Number(f[i]);
  const stat = {
    pid,
    pgrp: n(2),
    utime: n(11),
    stime: n(12),
    starttime: n(19),
    rss: n(21),
  };
  for (const v of Object.values(stat)) {
    if (!Number.isSafeInteger(v) || v < 0) return undefined;
  }
  return stat.pid > 0 ? stat : undefined;
}

/**
 * The resident set size in kB from a `/proc/PID/status` text (its `VmRSS:`
 * line), or undefined when it has none (a kernel thread, a zombie).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseStatusRssKb } from "./proc.ts";
 * assert.equal(parseStatusRssKb("Name:\tdeno\nVmRSS:\t  5120 kB\n"), 5120);
 * assert.equal(parseStatusRssKb("Name:\tVmRSS: 1 kB\n"), undefined);
 * ```
 */
export function parseStatusRssKb(text: string): number | undefined {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(text);
  const kb = m ? Number(m[1]) : NaN;
  return Number.isSafeInteger(kb) ? kb : undefined;
}

/** The sizes of the clock tick and the page, which `/proc` counts in. */
export interface ProcUnits {
  /** Clock ticks a second (`USER_HZ`). */
  ticksPerSecond: number;
  /** Bytes a page. */
  pageSize: number;
}

/** What the sampler reads `/proc` with; tests give their own. */
export interface ProcSource {
  /** The ids of every process now, or undefined when there is no `/proc`. */
  pids(): number[] | undefined;
  /** The text of `/proc/PID/stat`, or undefined once the process is gone. */
  stat(pid: number): string | undefined;
  /** The units `/proc` counts in here. */
  units(): ProcUnits;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "latin1");
  } catch {
    return undefined;
  }
}

/** The value of `candidates` nearest `measured`, when within a fifth of it. */
function snap(measured: number, candidates: number[]): number | undefined {
  let best: number | undefined;
  for (const c of candidates) {
    if (best === undefined || Math.abs(c - measured) < Math.abs(best - measured)) best = c;
  }
  return best !== undefined && Math.abs(best - measured) <= best / 5 ? best : undefined;
}

/**
 * The tick and page sizes, measured on this process: its start time in ticks
 * against its age, and its resident pages against its resident kB. Neither
 * has a file of its own, and these hold on every Linux; when a measure fails
 * the usual values (100 Hz, 4 KiB) stand.
 *
 * @example
 * ```ts
 * import { measureProcUnits } from "./proc.ts";
 * console.log(measureProcUnits()); // { ticksPerSecond: 100, pageSize: 4096 } on x86-64
 * ```
 */
export function measureProcUnits(): ProcUnits {
  let ticksPerSecond = 100;
  let pageSize = 4096;
  const stat = parseProcStat(readText("/proc/self/stat") ?? "");
  const uptime = Number((readText("/proc/uptime") ?? "").split(" ")[0]);
  const age = (Date.now() - performance.timeOrigin) / 1000;
  if (stat && uptime > age && stat.starttime > 0) {
    ticksPerSecond = snap(stat.starttime / (uptime - age), [100, 250, 300, 1000]) ??
      ticksPerSecond;
  }
  const statm = Number((readText("/proc/self/statm") ?? "").split(" ")[1]);
  const kb = parseStatusRssKb(readText("/proc/self/status") ?? "");
  if (statm > 0 && kb !== undefined) {
    pageSize = snap((kb * 1024) / statm, [4096, 16384, 65536]) ?? pageSize;
  }
  return { ticksPerSecond, pageSize };
}

/**
 * The real `/proc`. `pids()` is undefined where there is none (macOS, the
 * BSDs, Windows) or where it cannot be read.
 *
 * @example
 * ```ts
 * import { linuxProc } from "./proc.ts";
 * const proc = linuxProc();
 * console.log(proc.pids()?.length, proc.stat(1));
 * ```
 */
export function linuxProc(): ProcSource {
  let units: ProcUnits | undefined;
  return {
    pids() {
      let names: string[];
      try {
        names = readdirSync("/proc");
      } catch {
        return undefined;
      }
      const pids: number[] = [];
      for (const name of names) {
        const c = name.charCodeAt(0);
        if (c >= 48 && c <= 57) pids.push(Number(name));
      }
      return pids;
    },
    stat: (pid) => readText(`/proc/${pid}/stat`),
    units: () => units ??= measureProcUnits(),
  };
}
