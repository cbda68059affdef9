/**
 * CPU time and resident memory of every worker's process group, read by the
 * master from `/proc`: the workers do nothing for it. Each worker is a group
 * leader, so the processes an app starts count as the worker's.
 *
 * @module
 */
import type { MetricDelta } from "../protocol/messages.ts";
import { parseProcStat, type ProcSource, type ProcStat } from "./proc.ts";

/** A worker process to sample: its telemetry id, its slot, and its pid (its group's id). */
export interface SampledWorker {
  id: number;
  slot: number;
  pid: number;
}

/** What the sampler knows of one worker's process group. */
export interface WorkerFigures {
  /** Cores used over the last interval (0.5 is half of one core), or null before two samples. */
  cpu: number | null;
  /** Resident memory of the group, in bytes, or null before a sample. */
  memoryBytes: number | null;
}

/** Passes after which processes once seen outside every worker's group are read again. */
const FOREIGN_FORGET_PASSES = 12;

interface Member {
  starttime: number;
  utime: number;
  stime: number;
}

interface GroupState {
  slot: number;
  /** Members by pid, as last read. */
  members: Map<number, Member>;
  /** When the last pass read it (ms). */
  lastAt?: number;
  cpu: number | null;
  memoryBytes: number | null;
}

/**
 * Samples the process groups of the workers. Each pass lists `/proc` and
 * reads the `stat` of every process not known to be outside the workers'
 * groups; members are read on every pass, others once every
 * {@linkcode FOREIGN_FORGET_PASSES} passes (a pid can be reused, or a
 * process join a group).
 *
 * CPU time is kept per slot and only ever grows: each pass adds what every
 * member used since the last pass, so a worker's exit or a child's leaves
 * the slot's total where it was, and a restart continues the same series.
 * A child that lives less than one interval is not seen.
 *
 * @example Two passes over a fake /proc
 * ```ts
 * import assert from "node:assert/strict";
 * import { ProcessSampler } from "./process_sampler.ts";
 * let utime = 0;
 * const sampler = new ProcessSampler({
 *   pids: () => [7],
 *   stat: () => `7 (app) S 1 7 7 0 -1 0 0 0 0 0 ${utime} 0 0 0 20 0 1 0 5 0 256 0`,
 *   units: () => ({ ticksPerSecond: 100, pageSize: 4096 }),
 * });
 * sampler.sample([{ id: 1, slot: 1, pid: 7 }], 0);
 * utime = 50;
 * sampler.sample([{ id: 1, slot: 1, pid: 7 }], 1000);
 * assert.deepEqual(sampler.figures(1), { cpu: 0.5, memoryBytes: 1048576 });
 * ```
 */
export class ProcessSampler {
  #source: ProcSource;
  #groups = new Map<number, GroupState>();
  /** CPU seconds by slot and mode, since the master started. */
  #cpu = new Map<number, { user: number; system: number }>();
  /** Pids last seen outside every worker's group. */
  #foreign = new Set<number>();
  #passes = 0;

  constructor(source: ProcSource) {
    this.#source = source;
  }

  /**
   * One pass over `/proc` for `workers` at `nowMs`; false when there is no
   * `/proc` to read (nothing was sampled).
   */
  sample(workers: readonly SampledWorker[], nowMs: number): boolean {
    const pids = this.#source.pids();
    if (pids === undefined) return false;
    const { ticksPerSecond, pageSize } = this.#source.units();
    if (++this.#passes % FOREIGN_FORGET_PASSES === 0) this.#foreign.clear();
    const byLeader = new Map<number, GroupState>();
    const live = new Set<number>();
    for (const w of workers) {
      live.add(w.id);
      let g = this.#groups.get(w.id);
      if (g === undefined) {
        g = { slot: w.slot, members: new Map(), cpu: null, memoryBytes: null };
        this.#groups.set(w.id, g);
      }
      byLeader.set(w.pid, g);
    }
    for (const id of this.#groups.keys()) if (!live.has(id)) this.#groups.delete(id);
    if (byLeader.size === 0) return true;
    const seen = new Map<GroupState, ProcStat[]>();
    const foreign = new Set<number>();
    for (const pid of pids) {
      if (this.#foreign.has(pid)) {
        foreign.add(pid);
        continue;
      }
      const stat = parseProcStat(this.#source.stat(pid) ?? "");
      if (stat === undefined) continue;
      const g = byLeader.get(stat.pgrp);
      if (g === undefined) {
        foreign.add(pid);
        continue;
      }
      let list = seen.get(g);
      if (list === undefined) seen.set(g, list = []);
      list.push(stat);
    }
    // Only pids still listed stay: the set never outgrows the processes there are.
    this.#foreign = foreign;
    for (const [pid, g] of byLeader) {
      let stats = seen.get(g);
      if (stats === undefined) {
        // A worker that is not its group's leader (started by another supervisor): itself alone.
        const own = parseProcStat(this.#source.stat(pid) ?? "");
        stats = own?.pid === pid ? [own] : [];
      }
      this.#update(g, stats, nowMs, ticksPerSecond, pageSize);
    }
    return true;
  }

  #update(g: GroupState, stats: ProcStat[], nowMs: number, hz: number, pageSize: number): void {
    const total = this.#cpu.get(g.slot) ?? { user: 0, system: 0 };
    this.#cpu.set(g.slot, total);
    const members = new Map<number, Member>();
    let rss = 0;
    for (const s of stats) {
      const before = g.members.get(s.pid);
      const same = before !== undefined && before.starttime === s.starttime;
      // A pid new to the group counts from its start; a known one from the last pass.
      total.user += Math.max(0, s.utime - (same ? before.utime : 0)) / hz;
      total.system += Math.max(0, s.stime - (same ? before.stime : 0)) / hz;
      members.set(s.pid, { starttime: s.starttime, utime: s.utime, stime: s.stime });
      rss += s.rss;
    }
    // The group's ticks over the interval: of the members in both passes.
    let used = 0;
    for (const [pid, m] of members) {
      const before = g.members.get(pid);
      used += before && before.starttime === m.starttime
        ? m.utime + m.stime - before.utime - before.stime
        : 0;
    }
    if (g.lastAt !== undefined && nowMs > g.lastAt) {
      g.cpu = Math.max(0, used / hz / ((nowMs - g.lastAt) / 1000));
    }
    g.lastAt = nowMs;
    g.members = members;
    g.memoryBytes = stats.length ? rss * pageSize : null;
  }

  /** Worker `id` exited: its memory is no longer shown (its CPU time stays in its slot's). */
  forget(id: number): void {
    this.#groups.delete(id);
  }

  /** The figures of worker `id`, from the last pass. */
  figures(id: number): WorkerFigures {
    const g = this.#groups.get(id);
    return { cpu: g?.cpu ?? null, memoryBytes: g?.memoryBytes ?? null };
  }

  /**
   * `process.cpu.time` (by `cpu.mode` and `worker` slot, since the master
   * started) and `process.memory.usage` (by slot, the slot's live workers
   * together), as OpenTelemetry's process semantic conventions name them.
   * Nothing before the first pass.
   */
  metrics(): MetricDelta[] {
    if (this.#cpu.size === 0) return [];
    const slots = [...this.#cpu.keys()].sort((a, b) => a - b);
    const memory = new Map<number, number>();
    for (const g of this.#groups.values()) {
      if (g.memoryBytes !== null) memory.set(g.slot, (memory.get(g.slot) ?? 0) + g.memoryBytes);
    }
    return [
      {
        name: "process.cpu.time",
        kind: "counter",
        unit: "s",
        description: "CPU time of the worker's process group, by mode",
        points: slots.flatMap((worker) => {
          const t = this.#cpu.get(worker)!;
          return [
            { attributes: { "cpu.mode": "user", worker: String(worker) }, value: micro(t.user) },
            {
              attributes: { "cpu.mode": "system", worker: String(worker) },
              value: micro(t.system),
            },
          ];
        }),
      },
      {
        name: "process.memory.usage",
        kind: "updown",
        unit: "By",
        description: "Resident memory of the worker's process group",
        points: [...memory.keys()].sort((a, b) => a - b).map((worker) => ({
          attributes: { worker: String(worker) },
          value: memory.get(worker)!,
        })),
      },
    ];
  }
}

/** Seconds to the microsecond: sums of tick fractions print without float noise. */
function micro(seconds: number): number {
  return Math.round(seconds * 1e6) / 1e6;
}
