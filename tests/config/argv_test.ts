import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseCommandLine } from "../../src/config/argv.ts";
import { ConfigError } from "../../src/config/errors.ts";

function assertConfigError(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.message, message);
    return true;
  });
}

describe("parseCommandLine()", () => {
  test("parseCommandLine() splits run's options from the program at the first word", () => {
    const cl = parseCommandLine(["run", "-w", "2", "--timeout=5", "deno", "run", "-A", "s.ts"]);
    assert.equal(cl.command, "run");
    assert.equal(cl.flags.get("workers")?.raw, "2");
    assert.equal(cl.flags.get("timeout")?.raw, "5");
    assert.deepEqual(cl.rest, ["deno", "run", "-A", "s.ts"]);
  });

  test("parseCommandLine() stops at -- and keeps the program's own flags", () => {
    const cl = parseCommandLine(["run-program", "--no-inject", "--", "bun", "--hot", "x.ts"]);
    assert.equal(cl.command, "run");
    assert.equal(cl.flags.get("inject")?.raw, "false");
    assert.deepEqual(cl.rest, ["bun", "--hot", "x.ts"]);
  });

  test("parseCommandLine() accepts every setting's flag on every command", () => {
    const cl = parseCommandLine([
      "config",
      "--workers",
      "4",
      "--origin",
      "-c",
      "f.ini",
      "-e",
      "prod",
    ]);
    assert.equal(cl.flags.get("workers")?.raw, "4");
    assert.ok(cl.switches.has("origin"));
    assert.equal(cl.config, "f.ini");
    assert.equal(cl.environment, "prod");
  });

  test("parseCommandLine() accumulates a repeatable flag", () => {
    const cl = parseCommandLine(["check", "--otlp-header", "a=1", "--otlp-header", "b=2"]);
    assert.equal(cl.flags.get("otlp_headers")?.raw, "a=1,b=2");
  });

  test("parseCommandLine() rejects an unknown flag with a hint", () => {
    assertConfigError(
      () => parseCommandLine(["config", "--wokers", "3"]),
      'Unknown flag --wokers for "forklift config" (did you mean --workers?)',
    );
  });

  test("parseCommandLine() rejects a flag without its value", () => {
    assertConfigError(
      () => parseCommandLine(["config", "--workers"]),
      "Flag --workers needs a value (--workers N)",
    );
  });

  test("parseCommandLine() rejects an unknown command with a hint", () => {
    assertConfigError(
      () => parseCommandLine(["cnofig"]),
      'Unknown command "cnofig" (did you mean "config"?); "forklift help" lists the commands',
    );
  });

  test("parseCommandLine() maps --help and --version and no arguments", () => {
    assert.equal(parseCommandLine([]).command, "help");
    assert.equal(parseCommandLine(["--version"]).command, "version");
    assert.deepEqual(parseCommandLine(["help", "run"]).rest, ["run"]);
    assert.equal(parseCommandLine(["config", "--help"]).help, true);
  });
});

test("parseCommandLine() takes a leading -- as nothing, as deno task cli -- ARGS passes it", () => {
  const line = parseCommandLine(["--", "run", "-w", "2", "--", "deno", "run", "app.ts"]);
  assert.equal(line.command, "run");
  assert.deepEqual(line.rest, ["deno", "run", "app.ts"]);
});
