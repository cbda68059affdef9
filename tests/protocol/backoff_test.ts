import { test } from "node:test";
import assert from "node:assert/strict";
import { backoff } from "../../src/protocol/backoff.ts";

test("backoff() grows by the factor from the first delay and stops at the cap", () => {
  const policy = { firstMs: 100, maxMs: 1_000 };
  assert.deepEqual([0, 1, 2, 3, 4, 10, 10_000].map((n) => backoff(n, policy)), [
    100,
    200,
    400,
    800,
    1_000,
    1_000,
    1_000,
  ]);
  assert.deepEqual(
    [0, 1, 2, 3].map((n) => backoff(n, { firstMs: 40, maxMs: 1_000, factor: 2.5 })),
    [40, 100, 250, 625],
  );
});

test("backoff() spreads the delay by the jitter and no further", () => {
  const policy = { firstMs: 1_000, maxMs: 60_000, jitter: 0.2 };
  assert.equal(backoff(0, policy, () => 0), 800);
  assert.equal(backoff(0, policy, () => 0.5), 1_000);
  assert.equal(backoff(0, policy, () => 0.999), 1_200);
  assert.equal(backoff(30, policy, () => 0.999), 71_976);
  for (let i = 0; i < 1_000; i++) {
    const d = backoff(3, policy);
    assert.ok(d >= 6_400 && d <= 9_600, `${d}`);
  }
});

test("backoff() treats a negative, fractional or absurd attempt as a count", () => {
  const policy = { firstMs: 100, maxMs: 5_000 };
  assert.equal(backoff(-3, policy), 100);
  assert.equal(backoff(1.7, policy), 200);
  assert.equal(backoff(Number.NaN, policy), 100);
  assert.equal(backoff(Number.POSITIVE_INFINITY, policy), 5_000);
  assert.equal(backoff(Number.MAX_SAFE_INTEGER, policy), 5_000);
});
