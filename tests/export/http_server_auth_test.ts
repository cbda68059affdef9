import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { request } from "node:http";
import { connect } from "node:net";
import { DASHBOARD_CSP, startMetricsServer } from "../../src/export/http_server.ts";
import type { MetricsCredentials } from "../../src/export/auth.ts";

const EXPOSITION = "# HELP up Whether the target is up\n# TYPE up gauge\nup 1\n";

function start(credentials?: MetricsCredentials) {
  return startMetricsServer({
    bind: "127.0.0.1:0",
    metrics: () => EXPOSITION,
    status: () => ({ pid: 1, workers: [] }),
    dashboard: () => ({ series: {} }),
    credentials,
  });
}

type Answer = {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
};

/** One request over its own connection: any method, any headers. */
function call(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, method, path, headers, agent: false, timeout: 5_000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => body += chunk);
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

/** Raw bytes in, the raw answer out (for requests node:http will not send). */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let out = "";
    socket.setTimeout(5_000, () => socket.destroy(new Error("timeout")));
    socket.on("connect", () => socket.write(text));
    socket.on("data", (d) => out += d);
    socket.on("end", () => resolve(out));
    socket.on("error", reject);
  });
}

const GUARDED: Array<[method: string, path: string, open: number]> = [
  ["GET", "/", 200],
  ["GET", "/metrics", 200],
  ["GET", "/metrics?name[]=up", 200],
  ["HEAD", "/metrics", 200],
  ["GET", "/status", 200],
  ["GET", "/dashboard.json?since=0", 200],
  ["GET", "/dashboard.js", 200],
  ["GET", "/dashboard.css", 200],
  ["GET", "/no-such-page", 404],
  ["GET", "/ready/", 404],
  ["POST", "/metrics", 405],
  ["DELETE", "/status", 405],
];

const basic = (text: string) => `Basic ${Buffer.from(text).toString("base64")}`;

for (
  const [kind, credentials, right, wrong, challenge] of [
    [
      "a bearer token",
      { token: "Zm9ya2xpZnQtdGVzdA", basicAuth: null },
      "Bearer Zm9ya2xpZnQtdGVzdA",
      ["Bearer Zm9ya2xpZnQtdGVzdB", basic("Zm9ya2xpZnQtdGVzdA"), "Zm9ya2xpZnQtdGVzdA"],
      'Bearer realm="forklift"',
    ],
    [
      "basic credentials",
      { token: null, basicAuth: "prometheus:pass:word" },
      basic("prometheus:pass:word"),
      [basic("prometheus:pass:wore"), "Bearer prometheus:pass:word", basic("prometheus")],
      'Basic realm="forklift", charset="UTF-8"',
    ],
  ] as const
) {
  describe(`startMetricsServer() guarded by ${kind}`, () => {
    test(`startMetricsServer() answers 401 on every path but /ready and /live without ${kind}`, async () => {
      const server = await start(credentials);
      try {
        const { port } = server.address;
        for (const [method, path] of GUARDED) {
          for (const authorization of [undefined, ...wrong]) {
            const r = await call(port, method, path, authorization ? { authorization } : {});
            const what = `${method} ${path} with ${authorization ?? "no credential"}`;
            assert.equal(r.status, 401, what);
            assert.equal(r.headers["www-authenticate"], challenge, what);
            assert.ok(!r.body.includes("up 1") && !r.body.includes("workers"), what);
          }
        }
        for (const path of ["/ready", "/live"]) {
          assert.equal((await call(port, "GET", path)).status, 200, path);
        }
      } finally {
        await server.close();
      }
    });

    test(`startMetricsServer() answers as it does unguarded with ${kind}`, async () => {
      const server = await start(credentials);
      try {
        const { port } = server.address;
        for (const [method, path, status] of GUARDED) {
          const r = await call(port, method, path, { authorization: right });
          assert.equal(r.status, status, `${method} ${path}`);
          assert.equal(r.headers["www-authenticate"], undefined);
        }
        const metrics = await call(port, "GET", "/metrics", { authorization: right });
        assert.equal(metrics.body, EXPOSITION);
        const status = await call(port, "GET", "/status", { authorization: right });
        assert.deepEqual(JSON.parse(status.body), { pid: 1, workers: [] });
      } finally {
        await server.close();
      }
    });
  });
}

describe("startMetricsServer() under hostile credentials", () => {
  test("startMetricsServer() answers malformed Authorization headers with 401 and keeps serving", async () => {
    const server = await start({ token: "t0k", basicAuth: "u:p" });
    try {
      const { port } = server.address;
      const get = (headers: string) =>
        raw(port, `GET /metrics HTTP/1.1\r\nHost: x\r\n${headers}Connection: close\r\n\r\n`);
      for (
        const headers of [
          "Authorization: Bearer t\xf6k\r\n",
          "Authorization: Bearer t0k\r\nAuthorization: Bearer t0k\r\n",
          "Authorization: Basic ====\r\n",
          "Authorization: Basic dTpw dTpw\r\n",
          "Authorization: \r\n",
          `Authorization: Bearer ${"t0k".repeat(2_000)}\r\n`,
          `Authorization: Basic ${Buffer.from(`u:${"p".repeat(4_000)}`).toString("base64")}\r\n`,
        ]
      ) {
        assert.match(await get(headers), /^HTTP\/1\.1 401 /, JSON.stringify(headers.slice(0, 60)));
      }
      // Past the head limit the HTTP layer refuses it before any check.
      assert.match(
        await get(`Authorization: Bearer ${"x".repeat(64 * 1024)}\r\n`),
        /^HTTP\/1\.1 431 /,
      );
      assert.match(await get(`Authorization: ${basic("u:p")}\r\n`), /^HTTP\/1\.1 200 /);
    } finally {
      await server.close();
    }
  });
});

describe("startMetricsServer() response headers", () => {
  const EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
  };
  const PAGE = { ...EXPECTED, "content-security-policy": DASHBOARD_CSP };

  test("startMetricsServer() sends the security headers on every answer, errors included", async () => {
    for (const credentials of [undefined, { token: "t", basicAuth: null }]) {
      const server = await start(credentials);
      try {
        const { port } = server.address;
        const answers: Array<[string, Answer]> = [];
        for (const [method, path] of [...GUARDED, ["GET", "/ready"], ["GET", "/live"]]) {
          answers.push([`${method} ${path}`, await call(port, method, path)]);
        }
        for (const [what, r] of answers) {
          // The dashboard page has a policy of its own, which lets it load its script.
          const page = what === "GET /" && r.status === 200;
          for (const [name, value] of Object.entries(page ? PAGE : EXPECTED)) {
            assert.equal(r.headers[name], value, `${name} of ${what} (${r.status})`);
          }
        }
        // Answers the HTTP layer gives before any route: a bad head, a body.
        for (
          const request of [
            "NOT HTTP\r\n\r\n",
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
          ]
        ) {
          const text = await raw(port, request);
          assert.match(text, /^HTTP\/1\.1 4\d\d /, text);
          for (const [name, value] of Object.entries(EXPECTED)) {
            assert.ok(
              text.toLowerCase().includes(`\r\n${name}: ${value.toLowerCase()}\r\n`),
              `${name} in ${text}`,
            );
          }
        }
      } finally {
        await server.close();
      }
    }
  });

  test("startMetricsServer() names 401 Unauthorized on the status line", async () => {
    const server = await start({ token: "t", basicAuth: null });
    try {
      const text = await raw(
        server.address.port,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      );
      assert.match(text, /^HTTP\/1\.1 401 Unauthorized\r\n/);
    } finally {
      await server.close();
    }
  });
});
