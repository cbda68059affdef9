import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "../../src/config/errors.ts";
import { parseIni } from "../../src/config/ini_file.ts";

test("parseIni() keeps # and ; inside a value and strips one pair of quotes", () => {
  const f = parseIni(
    [
      "; a comment",
      "# another",
      "[forklift]",
      "otlp_headers = x-api-key=ab#cd;ef",
      'service_name = "shop # eu"',
      "log_file = 'a;b'",
    ].join("\n"),
    "f.ini",
  );
  assert.deepEqual(f.sections.get("forklift")!.map((e) => e.value), [
    "x-api-key=ab#cd;ef",
    "shop # eu",
    "a;b",
  ]);
});

test("parseIni() names the line of a malformed entry without repeating it", () => {
  assert.throws(
    () => parseIni("[forklift]\nsecret-token-abc123\n", "f.ini"),
    (e: Error) =>
      e instanceof ConfigError &&
      e.message === 'Cannot parse f.ini line 2: expected "key = value" or "[section]"',
  );
});
