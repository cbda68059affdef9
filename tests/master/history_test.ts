import { test } from "node:test";
import assert from "node:assert/strict";
import { History } from "../../src/master/history.ts";

test("History keeps the latest entries, oldest first, and counts the dropped", () => {
  const h = new History<number>(3);
  assert.deepEqual(h.toArray(), []);
  for (let i = 1; i <= 2; i++) h.push(i);
  assert.deepEqual(h.toArray(), [1, 2]);
  for (let i = 3; i <= 10; i++) h.push(i);
  assert.deepEqual(h.toArray(), [8, 9, 10]);
  assert.equal(h.length, 3);
  assert.equal(h.dropped, 7);
});

test("History() refuses a capacity below one", () => {
  assert.throws(() => new History(0), {
    name: "RangeError",
    message: "Cannot keep a history of 0 entries: expected at least 1",
  });
});
