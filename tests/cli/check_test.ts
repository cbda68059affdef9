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
  test("forklift check sends one real OTLP export with the configured headers and encoding", async () => {
    const c = await collector(200);
    try {
      const r = await runCli([
        "check",
        "--connect",
        "--otlp-endpoint",
        `http://127.0.0.1:${c.port}`,
        "--otlp-header",
        "api-key=s3cret",
        "--otlp-protocol",
        "http/json",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        new RegExp(
          `^Export OK: http://127\\.0\\.0\\.1:${c.port}/v1/metrics took the export \\(http/json\\) in \\d+ ms$`,
          "m",
        ),
      );
      assert.ok(!r.stdout.includes("s3cret"));
      assert.equal(c.seen.length, 1);
      assert.equal(c.seen[0].url, "/v1/metrics");
      assert.equal(c.seen[0].headers["api-key"], "s3cret");
      const metrics = JSON.parse(c.seen[0].body).resourceMetrics[0].scopeMetrics[0].metrics;
      assert.equal(metrics[0].name, "forklift.check");
      assert.equal(metrics[0].gauge.dataPoints[0].asDouble, 1);
    } finally {
      await c.close();
    }
  });

  test("forklift check exits 1 when the collector refuses or errs", async () => {
    const c = await collector(503);
    try {
      const r = await runCli([
        "check",
        "--connect",
        "--otlp-endpoint",
        `http://127.0.0.1:${c.port}`,
      ]);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /^Export failed: .*\(http\/protobuf\) after \d+ ms: HTTP 503$/m);
    } finally {
      await c.close();
    }
    const closed = await freePort();
    const r = await runCli(["check", "--connect", "--otlp-endpoint", `http://127.0.0.1:${closed}`]);
    assert.equal(r.code, 1);
    assert.match(
      r.stdout,
      /^Export failed: http:\/\/127\.0\.0\.1:\d+\/v1\/metrics \(http\/protobuf\) after \d+ ms: \S/m,
    );
  });

  test("forklift check --connect without an endpoint is a usage error", async () => {
    const r = await runCli(["check", "--connect"]);
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      "forklift: No otlp_endpoint is set, nothing to connect to (set --otlp-endpoint or OTEL_EXPORTER_OTLP_ENDPOINT)\n",
    );
  });
});

describe("forklift check --connect resource", () => {
  const resourceOf = (body: string): Record<string, unknown> =>
    Object.fromEntries(
      JSON.parse(body).resourceMetrics[0].resource.attributes.map((
        a: { key: string; value: Record<string, unknown> },
      ) => [a.key, Object.values(a.value)[0]]),
    );

  test("checkCommand() names the service after the program, as run does, and sends run's resource", async () => {
    const c = await collector(200);
    try {
      const endpoint = `http://127.0.0.1:${c.port}`;
      const common = ["--otlp-endpoint", endpoint, "--otlp-protocol", "http/json"];
      const withProgram = await runCli([
        "check",
        "--connect",
        ...common,
        "--resource-attribute",
        "team=web",
        "--",
        "deno",
        "run",
        "-A",
        "server.ts",
      ]);
      assert.equal(withProgram.code, 0, withProgram.stderr);
      const bare = await runCli(["check", "--connect", ...common]);
      assert.equal(bare.code, 0, bare.stderr);
      assert.equal(c.seen.length, 2);
      const named = resourceOf(c.seen[0].body);
      assert.equal(named["service.name"], "server");
      assert.equal(named.team, "web");
      for (const key of ["service.instance.id", "host.name", "process.pid"]) {
        assert.ok(key in named, `${key} missing from ${JSON.stringify(named)}`);
      }
      assert.equal(resourceOf(c.seen[1].body)["service.name"], "forklift");
    } finally {
      await c.close();
    }
  });
});
