import { test } from "node:test";
import assert from "node:assert/strict";
import { systemClock } from "../../src/master/clock.ts";
import { EventQueue } from "../../src/master/event_queue.ts";

test("EventQueue keeps first-in first-out order as it wraps and grows", async () => {
  const q = new EventQueue<number>(systemClock);
  let next = 0;
  let expected = 0;
  // Interleaved pushes and takes wrap the ring many times; bursts make it grow.
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 7 + round * 13; i++) q.push(next++);
    for (let i = 0; i < 5 + round * 11; i++) assert.equal(q.shift(), expected++);
  }
  assert.equal(q.length, next - expected);
  while (q.length > 0) assert.equal(await q.next(10, () => -1), expected++);
  assert.equal(expected, next);
  assert.equal(q.shift(), undefined);
  assert.equal(await q.next(1, () => -1), -1);
});

test("EventQueue wakes a waiting reader with the event pushed", async () => {
  const q = new EventQueue<string>(systemClock);
  const taken = q.next(5_000, () => "tick");
  q.push("SIGTERM");
  assert.equal(await taken, "SIGTERM");
  assert.equal(q.length, 0);
});
