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

test("HttpMetrics.wrap() hands back an async handler's own promise, recorded before the caller sees it", async () => {
  const storage = new Storage();
  const http = new HttpMetrics(storage);
  const pending = Promise.resolve(new Response("a", { status: 202 }));
  const handler = http.wrap((_r: Request) => pending);
  const out = handler(req("DELETE"));
  assert.equal(out, pending, "no promise of the wrapper's own in between");
  let seen = -1;
  await (out as Promise<Response>).then(() => seen = http.requests);
  assert.equal(seen, 1);
  assert.deepEqual(durations(storage).map((p) => p.attributes), [
    { "http.request.method": "DELETE", "http.response.status_code": 202 },
  ]);
});

test("HttpMetrics.wrap() awaits a thenable that is not a native promise", async () => {
  const storage = new Storage();
  const http = new HttpMetrics(storage);
  let calls = 0;
  const thenable = {
    then(ok: (r: Response) => void) {
      calls++;
      ok(new Response("t", { status: 203 }));
    },
  };
  const handler = http.wrap((_r: Request) => thenable);
  const out = await (handler(req()) as Promise<Response>);
  assert.equal(out.status, 203);
  assert.equal(calls, 1, "then() called once");
  assert.equal(durations(storage)[0].attributes["http.response.status_code"], 203);
});

test("HttpMetrics.wrap() records a response whose status getter throws as 500, and passes it on", async () => {
  const storage = new Storage();
  const http = new HttpMetrics(storage);
  const odd = {
    get status(): number {
      throw new Error("no status");
    },
  };
  const sync = http.wrap((_r: Request) => odd);
  const later = http.wrap((_r: Request) => Promise.resolve(odd));
  assert.equal(sync(req()), odd);
  assert.equal(await later(req()), odd);
  const [point] = durations(storage);
  assert.equal(point.attributes["http.response.status_code"], 500);
  assert.equal(point.count, 2);
});

test("HttpMetrics keeps one series per method, status and route across many requests", () => {
  const storage = new Storage();
  const http = new HttpMetrics(storage);
  const statuses = [200, 404, 200, 500, 201];
  const methods = ["GET", "POST", "OPTIONS", "PURGE", "PATCH"];
  let i = 0;
  const handler = http.wrap((r: Request) => {
    if (i % 3 === 0) http.setRoute(r, i % 2 === 0 ? "/a" : "/b");
    return new Response(null, { status: statuses[i % statuses.length] });
  });
  const expected = new Map<string, number>();
  for (; i < 200; i++) {
    const method = methods[i % methods.length];
    handler(req(method));
    const attrs: Record<string, unknown> = {
      "http.request.method": method === "PURGE" ? "_OTHER" : method,
      "http.response.status_code": statuses[i % statuses.length],
    };
    if (i % 3 === 0) attrs["http.route"] = i % 2 === 0 ? "/a" : "/b";
    const key = JSON.stringify(Object.entries(attrs).sort());
    expected.set(key, (expected.get(key) ?? 0) + 1);
  }
  const got = new Map(
    durations(storage).map((p) => [JSON.stringify(Object.entries(p.attributes).sort()), p.count]),
  );
  assert.deepEqual(got, expected);
  assert.equal(http.requests, 200);
});

test("HttpMetrics.nodeResponded() records a node:http request once, at the end of its response", () => {
  const storage = new Storage();
  const http = new HttpMetrics(storage);
  // As Express leaves them: the matched route is on the request by the time the app ends.
  const request: { method: string; route?: { path: string }; baseUrl?: string } = { method: "PUT" };
  const response = { statusCode: 200 };
  http.nodeRequest(request, response);
  request.baseUrl = "/api";
  request.route = { path: "/items/:id" };
  response.statusCode = 202;
  http.nodeResponded(response);
  http.nodeResponded(response); // a second end() is no second request
  http.nodeResponded({ statusCode: 200 }); // a response no server of ours received
  assert.equal(http.requests, 1);
  const points = durations(storage);
  assert.deepEqual(points.map((p) => [p.attributes, p.count]), [
    [{
      "http.request.method": "PUT",
      "http.response.status_code": 202,
      "http.route": "/api/items/:id",
    }, 1],
  ]);
});

test("HttpMetrics.nodeRequest() marks a response that names its request with one slot, and records that request", () => {
  const storage = new Storage();
  const http = new HttpMetrics(storage);
  // node:http's ServerResponse on both runtimes: `res.req` is the request.
  const request: { method: string; route?: { path: string }; baseUrl?: string } = { method: "GET" };
  const response = { statusCode: 200, req: request };
  const slots = Object.getOwnPropertySymbols(response).length;
  http.nodeRequest(request, response);
  assert.equal(Object.getOwnPropertySymbols(response).length, slots + 1);
  assert.equal(http.active, 1);
  request.baseUrl = "";
  request.route = { path: "/items/:id" };
  http.nodeResponded(response);
  http.nodeResponded(response);
  // A response that names another request: the one the server handed over is recorded.
  const other = { statusCode: 404, req: { method: "GET" } };
  http.nodeRequest({ method: "DELETE" }, other);
  http.nodeResponded(other);
  assert.equal(http.requests, 2);
  assert.equal(http.active, 0);
  assert.deepEqual(durations(storage).map((p) => [p.attributes, p.count]), [
    [{
      "http.request.method": "GET",
      "http.response.status_code": 200,
      "http.route": "/items/:id",
    }, 1],
    [{ "http.request.method": "DELETE", "http.response.status_code": 404 }, 1],
  ]);
});
