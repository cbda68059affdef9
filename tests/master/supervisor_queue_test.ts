import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Supervisor } from "../../src/master/supervisor.ts";
import { brief, spawnsIn, SupervisorDriver } from "../_helpers/supervisor_driver.ts";

describe("Supervisor outcomes as events", () => {
  test("Supervisor.dispatch() asks for one spawn at a time, the next once the last one's outcome is in", () => {
    const sup = new Supervisor({
      workers: 3,
      once: false,
      timeoutMs: 30_000,
      gracefulMs: 30_000,
      heartbeatMs: 5_000,
    });
    const first = sup.dispatch({ type: "start", now: 0 });
    assert.deepEqual(brief(first), ["spawn:1.1"]);
    const [a] = spawnsIn(first);
    // Nothing that is not the outcome moves the next spawn forward.
    assert.deepEqual(spawnsIn(sup.dispatch({ type: "tick", now: 5 })), []);
    const second = sup.dispatch({
      type: "spawned",
      workerId: a.id,
      now: 10,
      expectsHello: false,
      requestLimit: 0,
    });
    assert.deepEqual(brief(second), ["spawn:2.1"]);
    const [b] = spawnsIn(second);
    const third = sup.dispatch({ type: "spawnFailed", workerId: b.id, now: 20, error: "EAGAIN" });
    // A boot failure stops the master: the third slot is never spawned.
    assert.deepEqual(spawnsIn(third), []);
    assert.equal(sup.phase.name, "stopping");
  });

  test("Supervisor.wakeAt() names no backoff deadline while a spawn's outcome is awaited", () => {
    const d = new SupervisorDriver({ workers: 2 });
    d.boot();
    for (const slot of [1, 2]) {
      d.exit(d.current(slot), 1);
      d.exit(d.current(slot), 1);
    }
    // Both slots wait out a backoff that ends at 200 ms.
    assert.equal(d.sup.wakeAt(), 200);
    const asked = d.sup.dispatch({ type: "tick", now: 200 });
    assert.deepEqual(brief(asked), ["spawn:1.3"]);
    // Slot 2 is due too, but waits for slot 1's outcome (an event, not a time):
    // the next deadline is the new worker's ready one, not a due one repeating.
    assert.equal(d.sup.wakeAt(), 1_200);
  });
});
