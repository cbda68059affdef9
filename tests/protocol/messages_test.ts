import { test } from "node:test";
import assert from "node:assert/strict";
import {
  MAX_ATTRIBUTES_SIZE,
  MAX_BOUNDARIES,
  MAX_DESCRIPTION,
  MAX_SERIES_ID,
  MAX_UNIT,
  parseMasterMessage,
  parseWorkerMessage,
} from "../../src/protocol/messages.ts";

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

test("parseWorkerMessage() refuses a long unit or description, too many boundaries and attributes too long in all", () => {
  const harvest = (metrics: unknown[]) => {
    const r = parseWorkerMessage({ type: "harvest", v: 1, seq: 1, metrics });
    assert.ok(r.ok && r.message.type === "harvest");
    return r.message;
  };
  const point = { attributes: {}, value: 1 };
  const ok = harvest([
    { name: "a", kind: "counter", unit: "u".repeat(MAX_UNIT), points: [point] },
    { name: "b", kind: "counter", description: "d".repeat(MAX_DESCRIPTION), points: [point] },
    {
      name: "c",
      kind: "histogram",
      boundaries: Array.from({ length: MAX_BOUNDARIES }, (_, i) => i),
      points: [{
        attributes: {},
        count: 0,
        sum: 0,
        buckets: new Array(MAX_BOUNDARIES + 1).fill(0),
      }],
    },
    {
      name: "d",
      kind: "counter",
      points: [{ attributes: { k: "v".repeat(MAX_ATTRIBUTES_SIZE - 1) }, value: 1 }],
    },
  ]);
  assert.equal(ok.metrics.length, 4);
  assert.equal(ok.dropped, 0);
  const bad = harvest([
    { name: "a", kind: "counter", unit: "u".repeat(MAX_UNIT + 1), points: [point] },
    { name: "b", kind: "counter", description: "d".repeat(10_000_000), points: [point] },
    {
      name: "c",
      kind: "histogram",
      boundaries: Array.from({ length: 200_000 }, (_, i) => i),
      points: [{ attributes: {}, count: 0, sum: 0, buckets: new Array(200_001).fill(0) }],
    },
    {
      name: "d",
      kind: "counter",
      points: [
        { attributes: { k: "v".repeat(MAX_ATTRIBUTES_SIZE) }, value: 1 },
        // 64 values of 16,000 characters each: every one under the value limit.
        {
          attributes: Object.fromEntries(
            Array.from({ length: 64 }, (_, i) => [`k${i}`, "v".repeat(16_000)]),
          ),
          value: 1,
        },
      ],
    },
  ]);
  assert.deepEqual(bad.metrics, []);
  assert.equal(bad.dropped, 5);
  assert.equal(bad.refused, 5);
});

test("parseMasterMessage() takes a welcome without a resource, and ignores one an earlier master sends", () => {
  const welcome = {
    type: "welcome",
    v: 1,
    worker: 1,
    generation: 1,
    harvest_interval_ms: 5000,
    heartbeat_ms: 1000,
  };
  assert.ok(parseMasterMessage(welcome).ok);
  for (const resource of [{ "service.name": "api" }, "old", null]) {
    assert.ok(parseMasterMessage({ ...welcome, resource }).ok, JSON.stringify(resource));
  }
});
