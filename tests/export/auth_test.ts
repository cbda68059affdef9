import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  authorizationHeader,
  exposureWarning,
  isLoopback,
  metricsGate,
} from "../../src/export/auth.ts";
import { loadSettings } from "../../src/config/load.ts";
import { ConfigError } from "../../src/config/errors.ts";
import { displayValue, jsonValue, SETTINGS_BY_NAME } from "../../src/config/settings.ts";

const basic = (text: string) => `Basic ${Buffer.from(text, "utf8").toString("base64")}`;

describe("metricsGate()", () => {
  test("metricsGate() is undefined when no credential is set", () => {
    assert.equal(metricsGate({ token: null, basicAuth: null }), undefined);
  });

  test("metricsGate() admits the exact bearer token only", () => {
    const gate = metricsGate({ token: "tok-3x4mple_~+/=", basicAuth: null })!;
    assert.equal(gate.challenge, 'Bearer realm="forklift"');
    assert.ok(gate.admits("Bearer tok-3x4mple_~+/="));
    assert.ok(gate.admits("bearer tok-3x4mple_~+/="), "the scheme is case-insensitive");
    for (
      const wrong of [
        null,
        "",
        "Bearer",
        "Bearer ",
        "Bearer tok-3x4mple_~+/",
        "Bearer tok-3x4mple_~+/==",
        "Bearer TOK-3X4MPLE_~+/=",
        "Bearer tok-3x4mple_~+/= extra",
        "Token tok-3x4mple_~+/=",
        basic("tok-3x4mple_~+/="),
        "tok-3x4mple_~+/=",
        `Bearer ${"x".repeat(10_000)}`,
      ]
    ) assert.ok(!gate.admits(wrong), `admitted ${JSON.stringify(wrong)}`);
  });

  test("metricsGate() admits the exact basic credentials only", () => {
    const gate = metricsGate({ token: null, basicAuth: "prom:pä:ss" })!;
    assert.equal(gate.challenge, 'Basic realm="forklift", charset="UTF-8"');
    assert.ok(gate.admits(basic("prom:pä:ss")));
    assert.ok(gate.admits(`BASIC ${Buffer.from("prom:pä:ss").toString("base64")}`));
    for (
      const wrong of [
        null,
        basic("prom:pä:s"),
        basic("prom:pä:ss "),
        basic("Prom:pä:ss"),
        basic("prom"),
        basic(""),
        "Basic",
        "Basic !!!!",
        "Basic cHJvbTpw?",
        "Bearer prom:pä:ss",
        `Bearer ${Buffer.from("prom:pä:ss").toString("base64")}`,
      ]
    ) assert.ok(!gate.admits(wrong), `admitted ${JSON.stringify(wrong)}`);
  });

  test("metricsGate() with both set admits either, and challenges with both schemes", () => {
    const gate = metricsGate({ token: "t0ken", basicAuth: "u:p" })!;
    assert.equal(
      gate.challenge,
      'Basic realm="forklift", charset="UTF-8", Bearer realm="forklift"',
    );
    assert.ok(gate.admits("Bearer t0ken"));
    assert.ok(gate.admits(basic("u:p")));
    assert.ok(!gate.admits(basic("t0ken")));
    assert.ok(!gate.admits("Bearer u:p"));
  });
});

describe("authorizationHeader()", () => {
  test("authorizationHeader() sends what metricsGate() admits", () => {
    for (
      const credentials of [
        { token: "abc", basicAuth: null },
        { token: null, basicAuth: "user:pässword:with:colons" },
        { token: "abc", basicAuth: "u:p" },
      ]
    ) {
      const header = authorizationHeader(credentials);
      assert.ok(header !== undefined);
      assert.ok(metricsGate(credentials)!.admits(header), header);
    }
    assert.equal(authorizationHeader({ token: null, basicAuth: null }), undefined);
  });
});

describe("exposureWarning()", () => {
  const none = { metricsToken: null, metricsBasicAuth: null };

  test("exposureWarning() warns for every bind beyond loopback without a credential", () => {
    for (const bind of ["0.0.0.0:9464", "[::]:9464", "10.1.2.3:9464", "example.com:9464"]) {
      const line = exposureWarning({ metricsBind: bind, ...none });
      assert.ok(line !== undefined, bind);
      assert.ok(!line.includes("\n"));
      assert.match(line, /metrics_token or metrics_basic_auth/);
      assert.ok(line.includes(bind), line);
    }
  });

  test("exposureWarning() is quiet for loopback, off, or a credential set", () => {
    for (const bind of ["127.0.0.1:9464", "127.8.9.10:1", "[::1]:9464", "localhost:9464", null]) {
      assert.equal(exposureWarning({ metricsBind: bind, ...none }), undefined, String(bind));
    }
    assert.equal(
      exposureWarning({ ...none, metricsBind: "0.0.0.0:9464", metricsToken: "t" }),
      undefined,
    );
    assert.equal(
      exposureWarning({ ...none, metricsBind: "0.0.0.0:9464", metricsBasicAuth: "u:p" }),
      undefined,
    );
  });

  test("isLoopback() knows IPv4, IPv6 and mapped loopback, and nothing else", () => {
    for (
      const h of [
        "127.0.0.1",
        "127.255.0.3",
        "::1",
        "[::1]",
        "0:0:0:0:0:0:0:1",
        "::ffff:127.0.0.1",
        "LOCALHOST",
      ]
    ) {
      assert.ok(isLoopback(h), h);
    }
    for (
      const h of [
        "0.0.0.0",
        "::",
        "10.0.0.1",
        "128.0.0.1",
        "::2",
        "1::1",
        "myhost",
        "127.0.0.1.nip.io",
      ]
    ) {
      assert.ok(!isLoopback(h), h);
    }
  });
});

describe("metrics_token and metrics_basic_auth settings", () => {
  const load = (env: Record<string, string>) => loadSettings({ env, cwd: "/", cpuCount: 1 });

  test("loadSettings() reads metrics_token and metrics_basic_auth from the environment", () => {
    const r = load({ FORKLIFT_METRICS_TOKEN: " s3cret ", FORKLIFT_METRICS_BASIC_AUTH: "u:p:w" });
    assert.equal(r.config.metricsToken, "s3cret");
    assert.equal(r.config.metricsBasicAuth, "u:p:w");
    assert.equal(load({}).config.metricsToken, null);
  });

  test("loadSettings() refuses a bad credential without quoting it", () => {
    for (
      const [name, value] of [
        ["FORKLIFT_METRICS_TOKEN", "two words-s3cret"],
        ["FORKLIFT_METRICS_TOKEN", "ünicode-s3cret"],
        ["FORKLIFT_METRICS_BASIC_AUTH", "nocolon-s3cret"],
        ["FORKLIFT_METRICS_BASIC_AUTH", ":nouser-s3cret"],
        ["FORKLIFT_METRICS_BASIC_AUTH", "nopassword-s3cret:"],
        ["FORKLIFT_METRICS_BASIC_AUTH", "u:tab\there-s3cret"],
      ]
    ) {
      assert.throws(() => load({ [name]: value }), (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, /^Cannot read "metrics_(token|basic_auth)" .*got \*\*\*\*$/);
        assert.ok(!e.message.includes("s3cret"), e.message);
        return true;
      });
    }
  });

  test("displayValue() and jsonValue() print both credentials as ****", () => {
    for (const name of ["metrics_token", "metrics_basic_auth"]) {
      const s = SETTINGS_BY_NAME.get(name)!;
      assert.equal(displayValue(s, "u:s3cret"), "****");
      assert.equal(jsonValue(s, "u:s3cret"), "****");
      assert.equal(displayValue(s, null), "");
    }
  });
});
