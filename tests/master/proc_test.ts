import { test } from "node:test";
import assert from "node:assert/strict";
import { parseProcStat, parseStatusRssKb, type ProcSource } from "../../src/master/proc.ts";
import { ProcessSampler } from "../../src/master/process_sampler.ts";
import { RuntimeFigures, runtimeFigures } from "../../src/master/runtime_figures.ts";

/** A stat line: pid, comm, pgrp, utime, stime, starttime, rss. */
function statLine(
  pid: number,
  comm: string,
  pgrp: number,
  utime: number,
  stime = 0,
  starttime = 100,
  rss = 256,
): string {
  return `${pid} (${comm}) S 1 ${pgrp} ${pgrp} 0 -1 4194304 10 0 0 0 ${utime} ${stime} 0 0 20 0 1 0 ${starttime} 123456 ${rss} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n`;
}

test("parseProcStat() reads the fields after the last parenthesis, whatever the command name holds", () => {
  for (const comm of ["deno", "a b", "x) S 1 999 999", "((", ")", "a)(b) c", "tab\there"]) {
    const s = parseProcStat(statLine(42, comm, 40, 150, 25, 900, 77));
    assert.deepEqual(
      s,
      { pid: 42, pgrp: 40, utime: 150, stime: 25, starttime: 900, rss: 77 },
      comm,
    );
  }
});

test("parseProcStat() refuses what is not a stat line", () => {
  for (
    const text of [
      "",
      "42",
      "42 (deno)",
      "42 (deno) S 1 2 3",
      "(deno) S 1 40 40 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 9 9 9",
      "x (deno) S 1 40 40 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 9 9 9",
      "42 (deno) S 1 -40 40 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 9 9 9",
      "42 (deno) S 1 40 40 0 -1 0 0 0 0 0 1e400 1 0 0 20 0 1 0 9 9 9",
      "42 (deno) S 1 40 40 0 -1 0 0 0 0 0 1.5 1 0 0 20 0 1 0 9 9 9",
      "\u0000".repeat(300),
    ]
  ) assert.equal(parseProcStat(text), undefined, JSON.stringify(text.slice(0, 40)));
});

test("parseStatusRssKb() reads the VmRSS line only", () => {
  assert.equal(parseStatusRssKb("Name:\tdeno\nVmRSS:\t   5120 kB\nRssAnon:\t1 kB\n"), 5120);
  assert.equal(parseStatusRssKb("Name:\tVmRSS: 9 kB\nState:\tZ (zombie)\n"), undefined);
  assert.equal(parseStatusRssKb(""), undefined);
});

/** A /proc the test writes: stat lines by pid. */
function fakeProc(): ProcSource & { procs: Map<number, string>; reads: number; absent: boolean } {
  const proc = {
    procs: new Map<number, string>(),
    reads: 0,
    absent: false,
    pids: () => proc.absent ? undefined : [...proc.procs.keys()],
    stat: (pid: number) => (proc.reads++, proc.procs.get(pid)),
    units: () => ({ ticksPerSecond: 100, pageSize: 4096 }),
  };
  return proc;
}

function cpuOf(sampler: ProcessSampler, slot: number, mode: string): number | undefined {
  const m = sampler.metrics().find((x) => x.name === "process.cpu.time");
  return m?.points.find((p) =>
    p.attributes.worker === String(slot) && p.attributes["cpu.mode"] === mode
  )
    ?.value;
}

test("ProcessSampler.sample() sums a worker's process group, its children included, and no one else", () => {
  const proc = fakeProc();
  proc.procs.set(10, statLine(10, "deno", 10, 100, 10, 5, 1000));
  proc.procs.set(11, statLine(11, "child (x)", 10, 50, 0, 6, 500));
  proc.procs.set(12, statLine(12, "other", 12, 999, 999, 7, 99999));
  const sampler = new ProcessSampler(proc);
  const w = [{ id: 1, slot: 1, pid: 10 }];
  sampler.sample(w, 0);
  assert.deepEqual(sampler.figures(1), { cpu: null, memoryBytes: 1500 * 4096 });
  assert.equal(cpuOf(sampler, 1, "user"), 1.5);
  assert.equal(cpuOf(sampler, 1, "system"), 0.1);
  proc.procs.set(10, statLine(10, "deno", 10, 130, 10, 5, 1000));
  proc.procs.set(11, statLine(11, "child (x)", 10, 70, 0, 6, 500));
  sampler.sample(w, 1000);
  assert.equal(sampler.figures(1).cpu, 0.5);
  assert.equal(cpuOf(sampler, 1, "user"), 2);
  const memory = sampler.metrics().find((x) => x.name === "process.memory.usage")!;
  assert.deepEqual(memory.points, [{ attributes: { worker: "1" }, value: 1500 * 4096 }]);
});

test("ProcessSampler.metrics() keeps a slot's CPU time growing across a restart and a child's exit", () => {
  const proc = fakeProc();
  proc.procs.set(10, statLine(10, "deno", 10, 300));
  proc.procs.set(11, statLine(11, "child", 10, 200));
  const sampler = new ProcessSampler(proc);
  sampler.sample([{ id: 1, slot: 1, pid: 10 }], 0);
  assert.equal(cpuOf(sampler, 1, "user"), 5);
  proc.procs.delete(11);
  sampler.sample([{ id: 1, slot: 1, pid: 10 }], 1000);
  assert.equal(cpuOf(sampler, 1, "user"), 5);
  // The worker is replaced: a new process in the same slot, starting from 0.
  proc.procs.delete(10);
  proc.procs.set(20, statLine(20, "deno", 20, 40, 0, 900));
  sampler.sample([{ id: 2, slot: 1, pid: 20 }], 2000);
  assert.equal(cpuOf(sampler, 1, "user"), 5.4);
  assert.deepEqual(sampler.figures(1), { cpu: null, memoryBytes: null });
  // A pid reused by a new process counts from that process's start.
  proc.procs.set(20, statLine(20, "deno", 20, 10, 0, 950));
  sampler.sample([{ id: 2, slot: 1, pid: 20 }], 3000);
  assert.equal(cpuOf(sampler, 1, "user"), 5.5);
});

test("ProcessSampler.sample() reads processes outside the workers' groups once every few passes, and holds no more of them than there are", () => {
  const proc = fakeProc();
  for (let pid = 100; pid < 1100; pid++) proc.procs.set(pid, statLine(pid, "x", pid, 1));
  proc.procs.set(10, statLine(10, "deno", 10, 1));
  const sampler = new ProcessSampler(proc);
  const w = [{ id: 1, slot: 1, pid: 10 }];
  sampler.sample(w, 0);
  assert.equal(proc.reads, 1001);
  proc.reads = 0;
  sampler.sample(w, 1000);
  assert.equal(proc.reads, 1, "only the worker's group is read again");
  // A new child of the worker is found on the next pass.
  proc.procs.set(5000, statLine(5000, "child", 10, 100));
  sampler.sample(w, 2000);
  assert.equal(cpuOf(sampler, 1, "user"), 1.01);
  // Processes that went are not remembered.
  for (let pid = 100; pid < 1100; pid++) proc.procs.delete(pid);
  proc.reads = 0;
  for (let pid = 2000; pid < 2010; pid++) proc.procs.set(pid, statLine(pid, "y", pid, 1));
  sampler.sample(w, 3000);
  assert.equal(proc.reads, 12);
});

test("ProcessSampler.sample() reads a worker that leads no group by its pid alone, and forget() drops its memory", () => {
  const proc = fakeProc();
  proc.procs.set(30, statLine(30, "deno", 29, 100, 0, 5, 10));
  proc.procs.set(31, statLine(31, "sibling", 29, 100, 0, 5, 10));
  const sampler = new ProcessSampler(proc);
  sampler.sample([{ id: 1, slot: 2, pid: 30 }], 0);
  assert.deepEqual(sampler.figures(1), { cpu: null, memoryBytes: 10 * 4096 });
  assert.equal(cpuOf(sampler, 2, "user"), 1);
  sampler.forget(1);
  assert.deepEqual(sampler.metrics().find((m) => m.name === "process.memory.usage")?.points, []);
  assert.equal(cpuOf(sampler, 2, "user"), 1);
});

test("ProcessSampler.sample() answers false and measures nothing where there is no /proc", () => {
  const proc = fakeProc();
  proc.absent = true;
  const sampler = new ProcessSampler(proc);
  assert.equal(sampler.sample([{ id: 1, slot: 1, pid: 10 }], 0), false);
  assert.deepEqual(sampler.metrics(), []);
  assert.deepEqual(sampler.figures(1), { cpu: null, memoryBytes: null });
});

test("RuntimeFigures.record() keeps each worker's last heap and loop figures and its requests in flight, and ignores the rest", () => {
  const f = new RuntimeFigures();
  f.record(1, [
    { name: "v8js.memory.heap.used", kind: "gauge", points: [{ value: 5 }] },
    { name: "nodejs.eventloop.delay.p99", kind: "gauge", points: [], ids: [3], values: [0.02] },
    { name: "nodejs.eventloop.delay.max", kind: "gauge", points: [{ value: Infinity }] },
    { name: "v8js.memory.heap.limit", kind: "counter", points: [{ value: 9 }] },
    { name: "http.server.active_requests", kind: "updown", points: [{ value: 2 }] },
    { name: "app.thing", kind: "gauge", points: [{ value: 1 }] },
  ]);
  f.record(1, [
    { name: "v8js.memory.heap.used", kind: "gauge", points: [{ value: 7 }] },
    { name: "http.server.active_requests", kind: "updown", points: [{ value: -1 }] },
  ]);
  assert.deepEqual(runtimeFigures(f.get(1)), {
    request_duration: null,
    heap_used_bytes: 7,
    heap_limit_bytes: null,
    loop_delay_p99_seconds: 0.02,
    loop_delay_max_seconds: null,
    active_requests: 1,
  });
  f.forget(1);
  assert.equal(f.get(1), undefined);
});

test("RuntimeFigures.record() adds up a worker's request durations over every series, and starts over when the buckets change", () => {
  const f = new RuntimeFigures();
  const h = (boundaries: number[], ...buckets: number[][]) => ({
    name: "http.server.request.duration",
    kind: "histogram" as const,
    boundaries,
    points: buckets.map((b) => ({ count: b.reduce((x, y) => x + y, 0), sum: 1, buckets: b })),
  });
  f.record(1, [h([0.1, 1], [1, 2, 0], [3, 0, 1], [9, 9])]);
  f.record(1, [h([0.1, 1], [1, 0, 0])]);
  assert.deepEqual(runtimeFigures(f.get(1)).request_duration, {
    boundaries: [0.1, 1],
    bucket_counts: [5, 2, 1],
  });
  f.record(1, [h([0.5], [2, 2])]);
  assert.deepEqual(runtimeFigures(f.get(1)).request_duration, {
    boundaries: [0.5],
    bucket_counts: [2, 2],
  });
});
