import { test } from "node:test";
import assert from "node:assert/strict";
import { parseWorkerMessage } from "../../src/protocol/messages.ts";

test("parseWorkerMessage() drops only the bad points of a sound instrument", () => {
  // Infinity crosses a JSON channel as null.
  const raw = JSON.parse(JSON.stringify({
    type: "harvest",
    v: 1,
    seq: 1,
    metrics: [
      {
        name: "jobs",
        kind: "counter",
        points: [{ attributes: { q: "a" }, value: 3 }, { attributes: { q: "b" }, value: Infinity }],
      },
      { name: "", kind: "counter", points: [{ attributes: {}, value: 1 }] },
    ],
  }));
  const parsed = parseWorkerMessage(raw);
  assert.ok(parsed.ok);
  assert.ok(parsed.message.type === "harvest");
  assert.deepEqual(parsed.message.metrics, [
    { name: "jobs", kind: "counter", points: [{ attributes: { q: "a" }, value: 3 }] },
  ]);
  assert.equal(parsed.message.dropped, 2);
});
