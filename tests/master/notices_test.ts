import { test } from "node:test";
import assert from "node:assert/strict";
import { noticeLine } from "../../src/master/notices.ts";
import type { Notice } from "../../src/master/supervisor.ts";

const w1 = { id: 4, slot: 1, generation: 2 };
const facts = () => ({ pid: 321, addr: "0.0.0.0:8000" });

/** The line as logtape would render it. */
function rendered(notice: Notice): string {
  const line = noticeLine(notice, facts);
  return `${line.level}: ${
    line.message.replace(/\{(\w+)\}/g, (_, k) => String(line.props[k] ?? ""))
  }`;
}

test("noticeLine() says a SIGKILLed worker may have met the OOM killer", () => {
  assert.equal(
    rendered({ kind: "crashed", worker: w1, code: null, signal: "SIGKILL", delayMs: 200 }),
    "warn: Worker 1 (pid 321) crashed: exited with signal SIGKILL (SIGKILL: killed by the OOM killer or by hand?); respawning in 200 ms",
  );
  assert.equal(
    rendered({ kind: "crashed", worker: w1, code: 7, signal: null, delayMs: 0 }),
    "warn: Worker 1 (pid 321) crashed: exited with code 7; respawning in 0 ms",
  );
});

test("noticeLine() words each outcome of a boot failure", () => {
  const exit = { exit: { code: 1, signal: null } };
  const base = "Worker 1 failed to boot: exited with code 1 before it was ready";
  const cases: Array<[Extract<Notice, { kind: "bootFailed" }>["then"], string]> = [
    [{ action: "stop" }, `error: ${base}; stopping`],
    [{ action: "keep", generation: 1 }, `error: ${base}; keeping generation 1 in slot 1`],
    [{ action: "giveUp", failures: 5 }, `error: ${base}, 5 times in a row; stopping`],
    [{ action: "respawn", delayMs: 400 }, `warn: ${base}; respawning in 400 ms`],
  ];
  for (const [then, line] of cases) {
    assert.equal(rendered({ kind: "bootFailed", worker: w1, cause: exit, then }), line);
  }
  assert.equal(
    rendered({
      kind: "bootFailed",
      worker: w1,
      cause: { spawn: "spawn EAGAIN" },
      then: { action: "stop" },
    }),
    "error: Worker 1 failed to boot: cannot start its process (spawn EAGAIN); stopping",
  );
});

test("noticeLine() names the reason of a planned exit and the address of a ready worker", () => {
  assert.equal(
    rendered({ kind: "exited", worker: w1, code: null, signal: "SIGTERM", reason: "timeout" }),
    "info: Worker 1 (pid 321) exited with signal SIGTERM (timeout)",
  );
  assert.equal(
    rendered({ kind: "exited", worker: w1, code: 0, signal: null }),
    "info: Worker 1 (pid 321) exited with code 0",
  );
  assert.equal(
    rendered({ kind: "ready", worker: w1, afterMs: 41.6 }),
    "info: Worker 1 (pid 321, generation 2) ready on 0.0.0.0:8000 in 42 ms",
  );
  assert.equal(
    rendered({ kind: "stopping", mode: "graceful", graceMs: 30_000 }),
    "info: Stopping gracefully (up to 30 s)",
  );
});

test("noticeLine() gives the figure and the limit of a worker rolled for memory", () => {
  const MIB = 1024 * 1024;
  assert.equal(
    rendered({ kind: "overMemory", worker: w1, bytes: 612 * MIB + 1000, limit: 512 * MIB }),
    "warn: Worker 1 uses 612 MiB, over max_memory 512 MiB: rolling it",
  );
  assert.equal(
    rendered({
      kind: "overMemoryAtStart",
      worker: w1,
      bytes: 600 * MIB,
      limit: 512 * MIB,
      holdMs: 28_500,
    }),
    "warn: Worker 1 uses 600 MiB right after its start, over max_memory 512 MiB: the app needs more than the limit (raise max_memory?); its slot is rolled again in 29 s at the soonest",
  );
});
