import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  MAX_MEMORY_BACKOFF_MS,
  MEMORY_BACKOFF_MS,
  MEMORY_SAMPLES,
} from "../../src/master/memory_policy.ts";
import type { WorkerRef } from "../../src/master/supervisor.ts";
import { brief, noticesOf, spawnsIn, SupervisorDriver } from "../_helpers/supervisor_driver.ts";

const MIB = 1024 * 1024;
const LIMIT = 512 * MIB;

/** A sampling pass's report of one worker's memory, a harvest interval after the last. */
function sample(d: SupervisorDriver, w: WorkerRef, bytes: number) {
  d.now += 1_000;
  return d.send({ type: "memory", workerId: w.id, bytes });
}

describe("Supervisor and max_memory", () => {
  test("Supervisor.dispatch() rolls a worker whose memory stays over max_memory, once, its replacement ready first", () => {
    const d = new SupervisorDriver({ workers: 2, maxMemoryBytes: LIMIT });
    const [a, b] = d.boot();
    // One sample over the limit is a peak; one under it starts the count again.
    assert.deepEqual(brief(sample(d, a, 600 * MIB)), []);
    assert.deepEqual(brief(sample(d, a, 100 * MIB)), []);
    assert.deepEqual(brief(sample(d, a, 600 * MIB)), []);
    const out = sample(d, a, 612 * MIB);
    assert.deepEqual(noticesOf(out, "overMemory"), [{
      kind: "overMemory",
      worker: a,
      bytes: 612 * MIB,
      limit: LIMIT,
    }]);
    // The old one keeps serving: nothing is asked of it until its replacement is ready.
    assert.deepEqual(brief(out), ["spawn:1.2"]);
    const [a2] = spawnsIn(out);
    // More samples while the replacement boots change nothing.
    assert.deepEqual(brief(sample(d, a, 700 * MIB)), []);
    assert.deepEqual(brief(sample(d, a, 800 * MIB)), []);
    assert.deepEqual(brief(d.readyUp(a2)), ["shutdown:1.1"]);
    d.exit(a, 0);
    assert.equal(d.sup.restarts.memory, 1);
    assert.equal(d.sup.restarts.crash, 0);
    // The other slot was never touched.
    assert.equal(d.current(2).id, b.id);
  });

  test("Supervisor.dispatch() judges a worker's memory only once it is ready", () => {
    const d = new SupervisorDriver({ workers: 1, maxMemoryBytes: LIMIT });
    const [a] = spawnsIn(d.send({ type: "start" }));
    for (let i = 0; i < 5; i++) assert.deepEqual(brief(sample(d, a, 900 * MIB)), []);
    d.readyUp(a);
    // Samples taken while it booted do not count: the first one after ready is only the first.
    assert.deepEqual(brief(sample(d, a, 900 * MIB)), []);
    assert.deepEqual(brief(sample(d, a, 900 * MIB)), ["spawn:1.2"]);
  });

  test("Supervisor.dispatch() makes no loop of an app over max_memory right after its start", () => {
    const d = new SupervisorDriver({ workers: 1, maxMemoryBytes: LIMIT });
    const [a] = d.boot();
    for (let i = 1; i < MEMORY_SAMPLES; i++) sample(d, a, 600 * MIB);
    const rolledAt = d.now + 1_000;
    const [a2] = spawnsIn(sample(d, a, 600 * MIB));
    d.readyUp(a2);
    d.exit(a, 0);
    // The replacement is over the limit at once: said once, not rolled within the back-off.
    sample(d, a2, 600 * MIB);
    const held = sample(d, a2, 600 * MIB);
    assert.deepEqual(brief(held), []);
    assert.deepEqual(noticesOf(held, "overMemoryAtStart").map((n) => n.holdMs), [
      rolledAt + MEMORY_BACKOFF_MS - d.now,
    ]);
    let spawned: WorkerRef[] = [];
    let notices = 0;
    while (spawned.length === 0) {
      const out = sample(d, a2, 600 * MIB);
      notices += noticesOf(out, "overMemoryAtStart").length;
      spawned = spawnsIn(out);
    }
    assert.equal(notices, 0);
    // Rolled once the back-off is over, no sooner.
    assert.ok(
      d.now >= rolledAt + MEMORY_BACKOFF_MS && d.now < rolledAt + MEMORY_BACKOFF_MS + 1_000,
    );
    const secondAt = d.now;
    const [a3] = spawned;
    d.readyUp(a3);
    d.exit(a2, 0);
    // Its replacement is over at once too: the back-off has doubled.
    sample(d, a3, 600 * MIB);
    const again = noticesOf(sample(d, a3, 600 * MIB), "overMemoryAtStart");
    assert.deepEqual(again.map((n) => n.holdMs), [secondAt + 2 * MEMORY_BACKOFF_MS - d.now]);
    assert.equal(d.sup.restarts.memory, 2);
  });

  test("Supervisor.dispatch() doubles the max_memory back-off up to its cap, and a worker under the limit past it resets it", () => {
    const d = new SupervisorDriver({ workers: 1, maxMemoryBytes: LIMIT });
    let [w] = d.boot();
    const holds: number[] = [];
    const rollOnce = (): number => {
      for (;;) {
        const out = sample(d, w, 600 * MIB);
        const hold = noticesOf(out, "overMemoryAtStart")[0];
        if (hold !== undefined) holds.push(hold.holdMs);
        const [next] = spawnsIn(out);
        if (next === undefined) continue;
        d.readyUp(next);
        d.exit(w, 0);
        w = next;
        return d.now;
      }
    };
    const rolls = [rollOnce()];
    for (let i = 0; i < 7; i++) rolls.push(rollOnce());
    const gaps = rolls.slice(1).map((t, i) => t - rolls[i]);
    // Each gap is the back-off (to the next sample), doubling up to the cap.
    const want = [1, 2, 4, 8, 16, 32, 64].map((k) =>
      Math.min(k * MEMORY_BACKOFF_MS, MAX_MEMORY_BACKOFF_MS)
    );
    gaps.forEach((gap, i) => assert.ok(gap >= want[i] && gap <= want[i] + 1_000, `${gap}`));
    assert.equal(holds.length, 7);
    // A worker that stays under the limit past the back-off is judged afresh.
    d.now += MAX_MEMORY_BACKOFF_MS;
    sample(d, w, 100 * MIB);
    sample(d, w, 600 * MIB);
    const out = sample(d, w, 600 * MIB);
    assert.deepEqual(noticesOf(out, "overMemoryAtStart"), []);
    const [next] = spawnsIn(out);
    d.readyUp(next);
    d.exit(w, 0);
    sample(d, next, 600 * MIB);
    const held = noticesOf(sample(d, next, 600 * MIB), "overMemoryAtStart");
    assert.ok(held[0].holdMs <= MEMORY_BACKOFF_MS);
  });

  test("Supervisor.dispatch() never rolls for memory when max_memory is 0", () => {
    const d = new SupervisorDriver({ workers: 1, maxMemoryBytes: 0 });
    const [a] = d.boot();
    for (let i = 0; i < 10; i++) assert.deepEqual(brief(sample(d, a, 4096 * MIB)), []);
    assert.equal(d.sup.restarts.memory, 0);
  });

  test("Supervisor.dispatch() applies a max_memory a reload sets", () => {
    const d = new SupervisorDriver({ workers: 1 });
    d.boot();
    d.send({ type: "signal", signal: "SIGHUP" });
    const config = {
      workers: 1,
      once: false,
      timeoutMs: 30_000,
      gracefulMs: 30_000,
      heartbeatMs: 5_000,
      maxMemoryBytes: LIMIT,
    };
    const [w] = spawnsIn(d.send({ type: "reloaded", config }));
    d.readyUp(w);
    sample(d, w, 600 * MIB);
    assert.deepEqual(brief(sample(d, w, 600 * MIB)), ["spawn:1.3"]);
  });
});

test("Supervisor.dispatch() drops a memory roll queued for a slot whose worker crashes first", () => {
  const d = new SupervisorDriver({ workers: 2, maxMemoryBytes: LIMIT });
  const [a, b] = d.boot();
  for (let i = 1; i < MEMORY_SAMPLES; i++) sample(d, a, 600 * MIB);
  const [a2] = spawnsIn(sample(d, a, 600 * MIB));
  // Slot 1 rolls: slot 2's roll waits in the queue, and its worker crashes meanwhile.
  for (let i = 1; i < MEMORY_SAMPLES; i++) sample(d, b, 600 * MIB);
  assert.deepEqual(brief(sample(d, b, 600 * MIB)), []);
  const [b2] = spawnsIn(d.exit(b, 1)).concat(spawnsIn((d.now += 10_000, d.send({ type: "tick" }))));
  assert.equal(b2.slot, 2);
  d.readyUp(b2);
  d.readyUp(a2);
  d.exit(a, 0);
  d.now += 10_000;
  // The fresh worker of slot 2 is not rolled for what the crashed one used.
  assert.deepEqual(brief(d.send({ type: "tick" })), []);
  assert.deepEqual([d.sup.restarts.memory, d.sup.restarts.crash], [1, 1]);
  assert.equal(d.current(2).id, b2.id);
});
