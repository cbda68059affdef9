import { test } from "node:test";
import assert from "node:assert/strict";
import {
  formatStatus,
  readiness,
  renderStatus,
  type StatusDocument,
  type WorkerStatus,
} from "../../src/export/status.ts";
import { workerStatus } from "../_helpers/worker_status.ts";

const worker = workerStatus;

const DOC: StatusDocument = {
  pid: 999,
  version: "0.1.0",
  started_at: "2025-01-01T00:00:00.000Z",
  uptime_s: 61.7,
  service_name: "api",
  master_timers_armed: 2,
  workers: [worker(2), worker(1, { state: "starting", pid: null, handshake_ms: null })],
  totals: { workers: 2, requests: 30, restarts: 1, harvests: 7, dropped_points: 0 },
};

test("renderStatus() writes indented JSON with workers in slot order", () => {
  const body = renderStatus(DOC);
  assert.ok(body.endsWith("}\n"));
  const parsed = JSON.parse(body);
  assert.deepEqual(parsed.workers.map((w: WorkerStatus) => w.slot), [1, 2]);
  assert.deepEqual({ ...parsed, workers: [] }, { ...DOC, workers: [] });
  assert.equal(parsed.master_timers_armed, 2);
  assert.deepEqual(DOC.workers.map((w) => w.slot), [2, 1], "the input is not reordered");
});

test("formatStatus() prints a header, totals and one row per worker", () => {
  const lines = formatStatus(DOC).trimEnd().split("\n");
  assert.equal(lines[0], "api: master pid 999, forklift 0.1.0, up 62 s");
  assert.equal(lines[1], "workers 2, requests 30, restarts 1, harvests 7, dropped points 0");
  assert.match(lines[3], /^SLOT\s+PID\s+GEN\s+STATE\s+HANDSHAKE/);
  assert.match(lines[4], /^1\s+-\s+1\s+starting\s+-\s+10\s+0/);
  assert.match(lines[5], /^2\s+1002\s+1\s+ready\s+12 ms\s+20\s+0\s+2025-01-01T00:00:05\.000Z$/);
});

test("readiness() is false until the first boot is done, true while a worker is ready, false once stopping", () => {
  assert.deepEqual(readiness("booting", 0, 2), {
    ready: false,
    reason: "booting: 0 of 2 workers ready",
  });
  assert.equal(readiness("booting", 1, 2).ready, false, "half a service gets no traffic");
  assert.deepEqual(readiness("running", 2, 2), { ready: true, reason: "2 of 2 workers ready" });
  assert.equal(readiness("running", 1, 2).ready, true, "a reload or a crash leaves one serving");
  assert.deepEqual(readiness("running", 0, 2), { ready: false, reason: "no worker ready (of 2)" });
  assert.deepEqual(readiness("stopping", 2, 2), { ready: false, reason: "stopping" });
  assert.deepEqual(readiness("exited", 0, 2), { ready: false, reason: "exited" });
});

test("formatStatus() says whether the master is ready, and why not", () => {
  const ready = formatStatus({ ...DOC, ready: true, ready_reason: "2 of 2 workers ready" });
  assert.equal(ready.split("\n")[2], "ready: 2 of 2 workers ready");
  const not = formatStatus({ ...DOC, ready: false, ready_reason: "stopping", phase: "stopping" });
  assert.equal(not.split("\n")[2], "not ready: stopping");
});

test("formatStatus() adds each worker's CPU, memory, heap, loop delay and requests in flight when the master measures them", () => {
  const text = formatStatus({
    ...DOC,
    workers: [
      worker(1, {
        cpu: 0.456,
        memory_bytes: 52 * 1024 * 1024,
        heap_used_bytes: 6.5 * 1024 * 1024,
        heap_limit_bytes: 4 * 1024 ** 3,
        loop_delay_p99_seconds: 0.0123,
        loop_delay_max_seconds: 0.1,
        active_requests: 3,
      }),
      worker(2, {
        cpu: null,
        memory_bytes: null,
        heap_used_bytes: null,
        loop_delay_p99_seconds: null,
        loop_delay_max_seconds: null,
        active_requests: null,
      }),
    ],
  });
  const lines = text.split("\n");
  assert.match(lines[3], /LAST HARVEST\s+CPU\s+MEMORY\s+HEAP\s+LOOP P99\s+LOOP MAX\s+ACTIVE$/);
  assert.match(lines[4], /Z\s+45\.6%\s+52\.0 MiB\s+6\.5 MiB\s+12\.3 ms\s+100\.0 ms\s+3$/);
  assert.match(lines[5], /Z\s+-\s+-\s+-\s+-\s+-\s+-$/);
});
