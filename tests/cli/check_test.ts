import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage } from "node:http";
import { runCli } from "../_helpers/cli.ts";
import { freePort } from "../_helpers/master.ts";

function collector(status: number) {
  const seen: Array<{ url?: string; headers: IncomingMessage["headers"]; body: string }> = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      seen.push({ url: req.url, headers: req.headers, body });
      res.writeHead(status).end();
    });
  });
  return new Promise<{ port: number; seen: typeof seen; close(): Promise<void> }>((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        port: (server.address() as { port: number }).port,
        seen,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}

describe("forklift check --connect", () => {
  test("checkCommand() sends one empty OTLP export with the configured headers", async () => {
    const c = await collector(200);
    try {
      const r = await runCli([
        "check",
        "--connect",
        "--otlp-endpoint",
        `http://127.0.0.1:${c.port}`,
        "--otlp-header",
        "api-key=s3cret",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        new RegExp(`^Export OK: http://127\\.0\\.0\\.1:${c.port}/v1/metrics answered 200$`, "m"),
      );
      assert.ok(!r.stdout.includes("s3cret"));
      assert.equal(c.seen.length, 1);
      assert.equal(c.seen[0].url, "/v1/metrics");
      assert.equal(c.seen[0].headers["api-key"], "s3cret");
      assert.deepEqual(JSON.parse(c.seen[0].body), { resourceMetrics: [] });
    } finally {
      await c.close();
    }
  });

  test("checkCommand() exits 1 when the collector refuses or errs", async () => {
    const c = await collector(503);
    try {
      const r = await runCli([
        "check",
        "--connect",
        "--otlp-endpoint",
        `http://127.0.0.1:${c.port}`,
      ]);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /^Export failed: .*answered 503/m);
    } finally {
      await c.close();
    }
    const closed = await freePort();
    const r = await runCli(["check", "--connect", "--otlp-endpoint", `http://127.0.0.1:${closed}`]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^Export failed: http:\/\/127\.0\.0\.1:\d+\/v1\/metrics failed: /m);
  });

  test("checkCommand() --connect without an endpoint is a usage error", async () => {
    const r = await runCli(["check", "--connect"]);
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      "forklift: No otlp_endpoint is set, nothing to connect to (set --otlp-endpoint or OTEL_EXPORTER_OTLP_ENDPOINT)\n",
    );
  });
});
