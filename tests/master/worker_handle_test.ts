import { test } from "node:test";
import assert from "node:assert/strict";
import { type WorkerEvents, WorkerHandle } from "../../src/master/worker_handle.ts";
import type { WorkerProcessEvents } from "../../src/runtime/spawn.ts";

/** A handle on a fake process; `say` speaks for the worker. */
function fakeHandle(isolates = 1) {
  let on: WorkerProcessEvents | undefined;
  const signals: string[] = [];
  const heard: string[] = [];
  const events: WorkerEvents = {
    hello: () => void heard.push("hello"),
    ready: () => void heard.push("ready"),
    seen: () => void heard.push("seen"),
    bye: () => void heard.push("bye"),
    harvest: () => void heard.push("harvest"),
    invalid: () => void heard.push("invalid"),
    exit: () => void heard.push("exit"),
  };
  const handle = new WorkerHandle(
    (events) => {
      on = events;
      return {
        pid: 99_999_999,
        connected: true,
        send: () => true,
        kill: (s) => void signals.push(s),
        killGroup: () => {},
      };
    },
    { id: 1, slot: 1, generation: 1 },
    {
      events,
      welcome: () => ({
        worker: 1,
        generation: 1,
        harvest_interval_ms: 1000,
        heartbeat_ms: 0,
        resource: {},
      }),
      output: { prefix: () => false, json: () => false },
      write: { stdout: () => {}, stderr: () => {} },
      isolates,
    },
  );
  const say = (m: Record<string, unknown>, stream = 0) => on!.message({ v: 1, ...m }, stream);
  return { handle, say, signals, heard };
}

test("WorkerHandle reports hello, ready and bye once when a worker says them again and again", () => {
  const { say, heard } = fakeHandle();
  say({ type: "hello", pid: 1, runtime: "test/1" });
  for (let i = 0; i < 100; i++) say({ type: "ready", addr: "127.0.0.1:1" });
  for (let i = 0; i < 10_000; i++) say({ type: "bye", seq: i });
  const once = heard.filter((h) => h !== "seen");
  assert.deepEqual(once, ["hello", "ready", "bye"]);
});

test("WorkerHandle reports bye once for a process of several isolates, and signals nothing itself", () => {
  const { say, signals, heard } = fakeHandle(2);
  for (const stream of [0, 1]) say({ type: "hello", pid: 1, runtime: "test/1" }, stream);
  for (let i = 0; i < 50; i++) for (const stream of [0, 1]) say({ type: "bye", seq: i }, stream);
  assert.equal(heard.filter((h) => h === "bye").length, 1);
  assert.deepEqual(signals, []);
});
