import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_SERIES_ID, parseWorkerMessage } from "../../src/protocol/messages.ts";

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

test("parseWorkerMessage() takes numbered points with or without attributes and refuses bad ids", () => {
  const points = [
    { id: 0, attributes: { a: "x" }, value: 1 },
    { id: 0, value: 2 },
    { id: MAX_SERIES_ID - 1, value: 1 },
    { id: MAX_SERIES_ID, value: 1 },
    { id: -1, value: 1 },
    { id: 1.5, value: 1 },
    { id: "3", value: 1 },
    { value: 1 },
  ];
  const r = parseWorkerMessage({
    type: "harvest",
    v: 1,
    seq: 1,
    metrics: [{ name: "hits", kind: "counter", points }],
  });
  assert.ok(r.ok && r.message.type === "harvest");
  assert.deepEqual(r.message.metrics[0].points, points.slice(0, 3));
  assert.equal(r.message.dropped, 5);
});

test("parseWorkerMessage() keeps the sound entries of the ids and values columns", () => {
  const r = parseWorkerMessage({
    type: "harvest",
    v: 1,
    seq: 1,
    metrics: [
      { name: "hits", kind: "counter", points: [], ids: [0, 1, -1, 2], values: [1, -5, 1, 2] },
      { name: "h", kind: "histogram", boundaries: [1], points: [], ids: [0], values: [1] },
      { name: "g", kind: "gauge", points: [], ids: [0, 1], values: [1] },
    ],
  });
  assert.ok(r.ok && r.message.type === "harvest");
  assert.deepEqual(r.message.metrics, [
    { name: "hits", kind: "counter", points: [], ids: [0, 2], values: [1, 2] },
    { name: "g", kind: "gauge", points: [], ids: [0], values: [1] },
  ]);
  assert.equal(r.message.dropped, 2 + 1 + 1);
});
