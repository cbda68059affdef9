import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { SupervisorDriver } from "../_helpers/supervisor_driver.ts";

describe("Supervisor state for /status", () => {
  test("Supervisor.workers() lists each worker's transitions with their times on the clock", () => {
    const d = new SupervisorDriver({ workers: 1 });
    d.send({ type: "start" });
    const [view] = d.sup.workers();
    d.now = 40;
    d.send({ type: "hello", workerId: view.worker.id });
    d.now = 90;
    d.send({ type: "ready", workerId: view.worker.id });
    d.now = 500;
    d.send({ type: "signal", signal: "SIGTERM" });
    d.now = 510;
    d.send({ type: "bye", workerId: view.worker.id });
    const [after] = d.sup.workers();
    assert.deepEqual(after.transitions, [
      { state: "starting", at: 0 },
      { state: "hello", at: 40 },
      { state: "ready", at: 90 },
      { state: "stopping", at: 500 },
      { state: "bye", at: 510 },
    ]);
    assert.equal(after.readyAt, 90);
    assert.equal(after.phase, "stopping");
  });

  test("Supervisor.workers() keeps a worker's last 32 transitions however often it repeats itself", () => {
    const d = new SupervisorDriver({ workers: 1 });
    const [w] = d.boot();
    for (let i = 0; i < 10_000; i++) d.send({ type: "bye", workerId: w.id });
    const [view] = d.sup.workers();
    assert.equal(view.transitions.length, 32);
    assert.equal(view.transitions.at(-1)?.state, "bye");
  });
});
