import { test } from "node:test";
import assert from "node:assert/strict";
import { HTTP_DURATION, HttpMetrics, normaliseMethod } from "../../src/reporter/http.ts";
import { Storage } from "../../src/reporter/storage.ts";
import type { PointDelta } from "../../src/protocol/messages.ts";

function durations(storage: Storage): PointDelta[] {
  return storage.cut().metrics.find((m) => m.name === HTTP_DURATION)?.points ?? [];
}

const req = (method = "GET", path = "/") =>
  new Request(`http://localhost${path}`, { method, body: method === "POST" ? "x" : undefined });

test("normaliseMethod() maps unknown methods to _OTHER", () => {
  for (
    const m of ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
  ) {
    assert.equal(normaliseMethod(m), m);
  }
  assert.equal(normaliseMethod("PURGE"), "_OTHER");
  assert.equal(normaliseMethod("get"), "_OTHER");
  assert.equal(normaliseMethod("constructor"), "_OTHER");
});

test("HttpMetrics.wrap() times sync and async handlers by method and status", async () => {
  const storage = new Storage();
  const http = new HttpMetrics(storage);
  const sync = http.wrap((_r: Request) => new Response("a", { status: 201 }));
  const later = http.wrap(async (_r: Request) => {
    await new Promise((r) => setTimeout(r, 5));
    return new Response("b", { status: 404 });
  });
  sync(req("POST"));
  await later(req("PURGE"));
  const points = durations(storage);
  assert.equal(http.requests, 2);
  assert.deepEqual(points.map((p) => p.attributes), [
    { "http.request.method": "POST", "http.response.status_code": 201 },
    { "http.request.method": "_OTHER", "http.response.status_code": 404 },
  ]);
  assert.ok(points[1].sum! >= 0.004, `async duration ${points[1].sum}`);
  assert.equal(points[0].buckets!.length, 15);
});

test("HttpMetrics.wrap() counts a throwing handler as 500 and re-throws", async () => {
  const storage = new Storage();
  const http = new HttpMetrics(storage);
  const boom = new Error("boom");
  const sync = http.wrap((_r: Request): Response => {
    throw boom;
  });
  const rejects = http.wrap((_r: Request): Promise<Response> => Promise.reject(boom));
  assert.throws(() => sync(req()), boom);
  await assert.rejects(rejects(req()) as Promise<Response>, boom);
  const [point] = durations(storage);
  assert.deepEqual(point.attributes, {
    "http.request.method": "GET",
    "http.response.status_code": 500,
  });
  assert.equal(point.count, 2);
});

test("setRoute() names http.route; the raw path is never recorded", () => {
  const storage = new Storage();
  const http = new HttpMetrics(storage);
  const handler = http.wrap((r: Request) => {
    if (r.url.endsWith("/42")) http.setRoute(r, "/users/:id");
    return new Response("ok");
  });
  handler(req("GET", "/users/42"));
  handler(req("GET", "/other"));
  const attrs = durations(storage).map((p) => p.attributes);
  assert.deepEqual(attrs, [
    { "http.request.method": "GET", "http.response.status_code": 200, "http.route": "/users/:id" },
    { "http.request.method": "GET", "http.response.status_code": 200 },
  ]);
});

test("HttpMetrics.instrument() only names the route inside a wrapped server", () => {
  const storage = new Storage();
  const http = new HttpMetrics(storage);
  const inner = http.instrument((_r: Request) => new Response("ok"), "/health");
  const server = http.wrap(inner);
  http.wrappedServers = 1;
  server(req());
  const points = durations(storage);
  assert.equal(points.length, 1);
  assert.equal(points[0].count, 1, "counted once");
  assert.equal(points[0].attributes["http.route"], "/health");
});

test("HttpMetrics.instrument() times on its own without a wrapped server", () => {
  const storage = new Storage();
  const http = new HttpMetrics(storage);
  const handler = http.instrument((_r: Request, extra: string) => new Response(extra), "/x");
  handler(req(), "passed");
  const [point] = durations(storage);
  assert.equal(point.attributes["http.route"], "/x");
  assert.equal(http.requests, 1);
});
