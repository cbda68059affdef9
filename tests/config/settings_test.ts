import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  displayValue,
  envName,
  jsonValue,
  parseBind,
  parseHeaders,
  SETTINGS,
  SETTINGS_BY_NAME,
  type SettingValue,
} from "../../src/config/settings.ts";
import { describeReadError, parseIni } from "../../src/config/ini_file.ts";
import { suggest } from "../../src/config/errors.ts";

function asText(v: SettingValue): string {
  if (v === null) return "";
  if (typeof v === "object") return Object.entries(v).map(([k, x]) => `${k}=${x}`).join(",");
  return String(v);
}

describe("SETTINGS", () => {
  test("SETTINGS every default passes its own validator", () => {
    for (const s of SETTINGS) {
      if (s.default === null) continue;
      const text = s.type === "bind" && s.default === null ? "off" : asText(s.default);
      assert.deepEqual(s.parse(text, { cpuCount: 1 }), s.default, `default of ${s.name}`);
    }
  });

  test("SETTINGS holds the contract's setting names", () => {
    const names = SETTINGS.map((s) => s.name);
    for (
      const n of [
        "workers",
        "timeout",
        "graceful_timeout",
        "max_requests",
        "max_requests_jitter",
        "harvest_interval",
        "metrics_bind",
        "otlp_endpoint",
        "otlp_headers",
        "export_interval",
        "service_name",
        "inject",
        "hooks",
        "once",
        "log_level",
        "log_format",
        "pid_file",
      ]
    ) assert.ok(names.includes(n), n);
    assert.equal(new Set(names).size, names.length);
    assert.equal(new Set(SETTINGS.map((s) => s.flag)).size, names.length);
  });

  test("envName() upper-cases the setting name behind FORKLIFT_", () => {
    assert.equal(
      envName(SETTINGS_BY_NAME.get("max_requests_jitter")!),
      "FORKLIFT_MAX_REQUESTS_JITTER",
    );
  });
});

describe("displayValue()", () => {
  test("displayValue() redacts secrets and jsonValue() too", () => {
    const h = SETTINGS_BY_NAME.get("otlp_headers")!;
    assert.equal(displayValue(h, { "api-key": "abc" }), "****");
    assert.equal(jsonValue(h, { "api-key": "abc" }), "****");
    assert.equal(jsonValue(h, null), null);
    assert.equal(displayValue(SETTINGS_BY_NAME.get("workers")!, 3), "3");
  });
});

describe("parseBind()", () => {
  test("parseBind() accepts host:port, IPv6 and off, and rejects the rest", () => {
    assert.equal(parseBind("127.0.0.1:9464"), "127.0.0.1:9464");
    assert.equal(parseBind("[::1]:80"), "[::1]:80");
    assert.equal(parseBind(":9000"), "0.0.0.0:9000");
    assert.equal(parseBind("OFF"), null);
    assert.throws(() => parseBind("nowhere"), TypeError);
    assert.throws(() => parseBind("host:70000"), TypeError);
  });
});

describe("parseHeaders()", () => {
  test("parseHeaders() decodes percent-encoded values and rejects a pair without a key", () => {
    assert.deepEqual(parseHeaders("a=x%20y, b=2"), { a: "x y", b: "2" });
    assert.throws(() => parseHeaders("=3"), TypeError);
  });
});

describe("parseIni()", () => {
  test("parseIni() keeps line numbers and decodes quoted values", () => {
    const f = parseIni('; c\n[forklift]\n# c\nservice_name = "a ; b"\n', "x.ini");
    assert.deepEqual(f.sections.get("forklift"), [{
      key: "service_name",
      value: "a ; b",
      line: 4,
    }]);
  });

  test("parseIni() rejects a key before any section", () => {
    assert.throws(
      () => parseIni("workers = 2\n", "x.ini"),
      /x\.ini line 1: "workers" comes before/,
    );
  });
});

describe("describeReadError()", () => {
  test("describeReadError() explains an unreadable file", () => {
    assert.equal(describeReadError({ code: "EACCES" }), "permission denied");
    assert.equal(describeReadError({ code: "ENOENT" }), "no such file");
  });
});

describe("suggest()", () => {
  test("suggest() finds close names only", () => {
    assert.equal(suggest("wokers", ["workers", "timeout"]), "workers");
    assert.equal(suggest("zzz", ["workers", "timeout"]), undefined);
  });
});

test("displayValue() and jsonValue() hide credentials inside a URL", () => {
  const s = SETTINGS_BY_NAME.get("otlp_endpoint")!;
  assert.equal(
    displayValue(s, "https://me:s3cret@otlp.example:4318"),
    "https://****@otlp.example:4318",
  );
  assert.equal(jsonValue(s, "https://me:s3cret@otlp.example"), "https://****@otlp.example");
  assert.equal(displayValue(s, "https://otlp.example"), "https://otlp.example");
});
