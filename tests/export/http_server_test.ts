import { test } from "node:test";
import assert from "node:assert/strict";
import { Agent, request } from "node:http";
import { connect, type Socket } from "node:net";
import { MAX_CONNECTIONS, startMetricsServer } from "../../src/export/http_server.ts";
import { MAX_PIPELINED } from "../../src/export/http1.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../../src/export/prometheus.ts";

const EXPOSITION = "# HELP up Whether the target is up\n# TYPE up gauge\nup 1\n";

function start(errors: Error[] = []) {
  return startMetricsServer({
    bind: "127.0.0.1:0",
    metrics: () => Promise.resolve(EXPOSITION),
    status: () => ({ pid: 1, workers: [] }),
    onError: (e) => errors.push(e),
  });
}

/** One request over node:http: method, status, headers and body. */
function call(
  port: number,
  method: string,
  path: string,
): Promise<
  { status: number; headers: Record<string, string | string[] | undefined>; body: string }
> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => body += chunk);
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

test("startMetricsServer() serves /metrics with the Prometheus content type", async () => {
  const server = await start();
  try {
    assert.equal(server.address.host, "127.0.0.1");
    assert.ok(server.address.port > 0);
    const res = await fetch(`http://127.0.0.1:${server.address.port}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
    assert.equal(await res.text(), EXPOSITION);
  } finally {
    await server.close();
  }
});

test("startMetricsServer() serves /status as JSON and / as a text index", async () => {
  const server = await start();
  try {
    const status = await fetch(`http://127.0.0.1:${server.address.port}/status?x=1`);
    assert.equal(status.status, 200);
    assert.match(status.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(await status.json(), { pid: 1, workers: [] });
    const index = await fetch(`http://127.0.0.1:${server.address.port}/`);
    assert.equal(index.status, 200);
    assert.match(await index.text(), /\/metrics/);
  } finally {
    await server.close();
  }
});

test("startMetricsServer() answers HEAD with headers only, 404 and 405", async () => {
  const server = await start();
  try {
    const head = await call(server.address.port, "HEAD", "/metrics");
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-type"], PROMETHEUS_CONTENT_TYPE);
    assert.equal(head.headers["content-length"], String(EXPOSITION.length));
    assert.equal(head.body, "");
    const missing = await call(server.address.port, "GET", "/nope");
    assert.equal(missing.status, 404);
    const post = await call(server.address.port, "POST", "/metrics");
    assert.equal(post.status, 405);
    assert.equal(post.headers["allow"], "GET, HEAD");
  } finally {
    await server.close();
  }
});

test("startMetricsServer() answers 500 and reports the error when metrics() throws", async () => {
  const errors: Error[] = [];
  const server = await startMetricsServer({
    bind: "127.0.0.1:0",
    metrics: () => {
      throw new Error("boom");
    },
    status: () => ({}),
    onError: (e) => errors.push(e),
  });
  try {
    const res = await call(server.address.port, "GET", "/metrics");
    assert.equal(res.status, 500);
    assert.deepEqual(errors.map((e) => e.message), ["boom"]);
  } finally {
    await server.close();
  }
});

test("startMetricsServer() rejects with a clear error when the port is in use", async () => {
  const server = await start();
  try {
    const bind = `127.0.0.1:${server.address.port}`;
    await assert.rejects(
      startMetricsServer({ bind, metrics: () => "", status: () => ({}) }),
      (e: unknown) => {
        assert.ok(e instanceof Error);
        assert.equal(e.message, `Cannot listen on ${bind} for metrics: address already in use`);
        return true;
      },
    );
  } finally {
    await server.close();
  }
});

test("startMetricsServer() rejects a bind address without a port", async () => {
  await assert.rejects(
    startMetricsServer({ bind: "localhost", metrics: () => "", status: () => ({}) }),
    {
      name: "SyntaxError",
      message:
        'Cannot listen on "localhost" for metrics: expected HOST:PORT, such as 127.0.0.1:9464',
    },
  );
});

test("startMetricsServer() close() also closes idle keep-alive connections", async () => {
  const server = await start();
  const agent = new Agent({ keepAlive: true });
  try {
    const socketClosed = new Promise<string>((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port: server.address.port, path: "/metrics", agent },
        (res) => {
          res.resume();
          res.on("end", () => {
            // The response is done: the connection now idles in the agent's pool.
            req.socket?.once("close", () => resolve("closed"));
            server.close().catch(reject);
          });
        },
      );
      req.on("error", reject);
      req.end();
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve("still open"), 2000);
    });
    assert.equal(await Promise.race([socketClosed, timeout]), "closed");
    clearTimeout(timer);
  } finally {
    agent.destroy();
  }
});

test("startMetricsServer() drops a half-sent head after the deadline and still serves", async () => {
  const server = await startMetricsServer({
    bind: "127.0.0.1:0",
    metrics: () => EXPOSITION,
    status: () => ({}),
    limits: { headMs: 300, writeMs: 1000, maxHeadBytes: 16 * 1024 },
  });
  const sockets: Socket[] = [];
  try {
    const closedAt = (s: Socket) =>
      new Promise<number>((resolve) => s.on("close", () => resolve(performance.now())));
    const t0 = performance.now();
    const partial = connect(
      server.address.port,
      "127.0.0.1",
      () => partial.write("GET / HTTP/1.1\r\n"),
    );
    const silent = connect(server.address.port, "127.0.0.1");
    sockets.push(partial, silent);
    for (const s of sockets) s.on("error", () => {});
    const [a, b] = await Promise.all([closedAt(partial), closedAt(silent)]);
    assert.ok(a - t0 >= 250 && a - t0 < 2000, `half a head held ${a - t0} ms`);
    assert.ok(b - t0 >= 250 && b - t0 < 2000, `silence held ${b - t0} ms`);
    assert.equal((await call(server.address.port, "GET", "/metrics")).status, 200);
  } finally {
    for (const s of sockets) s.destroy();
    await server.close();
  }
});

test("startMetricsServer() lets a scrape in past MAX_CONNECTIONS idle clients", async () => {
  const server = await start();
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < MAX_CONNECTIONS + 10; i++) {
      const s = connect(server.address.port, "127.0.0.1");
      s.on("error", () => {});
      sockets.push(s);
    }
    await Promise.all(sockets.map((s) => new Promise((r) => s.once("connect", r))));
    const res = await call(server.address.port, "GET", "/metrics");
    assert.equal(res.status, 200);
    assert.equal(res.body, EXPOSITION);
  } finally {
    for (const s of sockets) s.destroy();
    await server.close();
  }
});

/** Sends `text` on a raw connection and resolves to all it gets back once the server closes. */
function raw(port: number, text: string, deadlineMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const s = connect(port, "127.0.0.1", () => s.write(text));
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`the server kept the connection open; got ${got.length} bytes`));
    }, deadlineMs);
    s.setEncoding("latin1");
    s.on("data", (d: string) => got += d);
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(timer);
      resolve(got);
    });
  });
}

test("startMetricsServer() renders /metrics at most MAX_PIPELINED times for one burst of pipelined requests", async () => {
  let renders = 0;
  const server = await startMetricsServer({
    bind: "127.0.0.1:0",
    metrics: () => (renders++, EXPOSITION),
    status: () => ({}),
  });
  try {
    // 15 KB of requests in one write: one answer each would be ~600 renders.
    const burst = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(15 * 1024 / 36);
    const got = await raw(server.address.port, burst);
    assert.equal(renders, MAX_PIPELINED);
    assert.equal(got.split("HTTP/1.1 200 OK").length - 1, MAX_PIPELINED);
    assert.match(got, /connection: close\r\n\r\n[^]*$/);
    assert.equal((await call(server.address.port, "GET", "/metrics")).status, 200);
  } finally {
    await server.close();
  }
});

test("startMetricsServer() answers 400 to conflicting Content-Length or Transfer-Encoding, and closes", async () => {
  let renders = 0;
  const server = await startMetricsServer({
    bind: "127.0.0.1:0",
    metrics: () => (renders++, EXPOSITION),
    status: () => ({}),
  });
  try {
    const heads = [
      "Content-Length: 0\r\nContent-Length: 39",
      "Content-Length: 0, 39",
      "Content-Length: 0\r\nTransfer-Encoding: chunked",
    ];
    for (const head of heads) {
      // What follows the head is a second request to whoever reads the length as 0.
      const got = await raw(
        server.address.port,
        `GET /metrics HTTP/1.1\r\nHost: x\r\n${head}\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n`,
      );
      assert.match(got, /^HTTP\/1\.1 400 Bad Request\r\n/, head);
      assert.equal(got.split("HTTP/1.1 ").length - 1, 1, `one answer to ${head}`);
    }
    assert.equal(renders, 0);
  } finally {
    await server.close();
  }
});

test("startMetricsServer() answers /ready 200 or 503 as ready() says, and /live 200", async () => {
  let state = { ready: false, reason: "booting: 0 of 2 workers ready" };
  const errors: Error[] = [];
  const server = await startMetricsServer({
    bind: "127.0.0.1:0",
    metrics: () => EXPOSITION,
    status: () => ({}),
    ready: () => {
      if (state === undefined) throw new Error("broken");
      return state;
    },
    onError: (e) => errors.push(e),
  });
  try {
    const port = server.address.port;
    const booting = await call(port, "GET", "/ready");
    assert.equal(booting.status, 503);
    assert.equal(booting.body, "not ready: booting: 0 of 2 workers ready\n");
    assert.equal(booting.headers["cache-control"], "no-store");
    assert.equal((await call(port, "GET", "/live")).status, 200);
    state = { ready: true, reason: "2 of 2 workers ready" };
    const ready = await call(port, "GET", "/ready");
    assert.equal(ready.status, 200);
    assert.equal(ready.body, "ready: 2 of 2 workers ready\n");
    const head = await call(port, "HEAD", "/ready");
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
    assert.equal((await call(port, "POST", "/live")).status, 405);
    state = undefined as unknown as typeof state;
    assert.equal((await call(port, "GET", "/ready")).status, 503, "a failing check is not ready");
    assert.equal(errors.length, 1);
  } finally {
    await server.close();
  }
});

test("startMetricsServer() serves the dashboard page, its files and data, with a policy that allows no inline code", async () => {
  const asked: number[] = [];
  const server = await startMetricsServer({
    bind: "127.0.0.1:0",
    metrics: () => EXPOSITION,
    status: () => ({ pid: 1, workers: [] }),
    dashboard: (since) => (asked.push(since), { now: 5, series: { t: [] } }),
  });
  try {
    const { port } = server.address;
    const page = await call(port, "GET", "/");
    assert.equal(page.status, 200);
    assert.match(String(page.headers["content-type"]), /^text\/html/);
    const csp = String(page.headers["content-security-policy"]);
    assert.equal(
      csp,
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
        "connect-src 'self'; frame-ancestors 'none'",
    );
    assert.equal(page.headers["x-content-type-options"], "nosniff");
    assert.equal(page.headers["x-frame-options"], "DENY");
    // Every script and stylesheet is a file of this origin: none inline, none elsewhere.
    assert.deepEqual([...page.body.matchAll(/<script([^>]*)>/g)].map((m) => m[1].trim()), [
      'src="/dashboard.js" defer',
    ]);
    assert.ok(!/<style|\sstyle=|\son[a-z]+=|https?:/i.test(page.body), page.body);
    const js = await call(port, "GET", "/dashboard.js");
    assert.equal(js.status, 200);
    assert.match(String(js.headers["content-type"]), /^text\/javascript/);
    assert.ok(js.body.includes("uPlot") && js.body.includes("/dashboard.json"));
    const css = await call(port, "GET", "/dashboard.css");
    assert.match(String(css.headers["content-type"]), /^text\/css/);
    assert.ok(css.body.includes("prefers-color-scheme: dark") && !/https?:|@import/.test(css.body));
    const data = await call(port, "GET", "/dashboard.json?since=1234");
    assert.equal(data.status, 200);
    assert.deepEqual(JSON.parse(data.body), { now: 5, series: { t: [] } });
    assert.deepEqual(asked, [1234]);
    assert.equal((await call(port, "POST", "/dashboard.json")).status, 405);
  } finally {
    await server.close();
  }
});

test("startMetricsServer() without a dashboard serves the text index and no dashboard path", async () => {
  const server = await start();
  try {
    const { port } = server.address;
    assert.match((await call(port, "GET", "/")).body, /\/metrics/);
    assert.equal((await call(port, "GET", "/dashboard.json")).status, 404);
  } finally {
    await server.close();
  }
});
