/**
 * Prometheus's own `promtool check metrics`, which validates the exposition.
 * `.ci/run` installs it (Debian package `prometheus`); on a machine without
 * it, the checks that need it are skipped with a reason, and fail under CI.
 *
 * @module
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";

/** Runs `promtool check metrics` on `text`; `undefined` when promtool is missing. */
export function promtoolCheck(text: string): { code: number | null; output: string } | undefined {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  if (r.error) return undefined;
  return { code: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/** Asserts that promtool is installed and takes `text` without a word. */
export function assertPromtoolAccepts(text: string): void {
  const check = promtoolCheck(text);
  assert.ok(check !== undefined, "promtool is not installed; .ci/run installs it");
  assert.equal(check.code, 0, `promtool: ${check.output}`);
  assert.equal(check.output, "");
}

const present = promtoolCheck("") !== undefined;

/**
 * The `skip` option of a test that needs promtool: false when it is there
 * (or under CI, where its absence must fail), else the reason.
 */
export const NEEDS_PROMTOOL: string | false = present || process.env.CI
  ? false
  : "promtool is not installed (Debian package prometheus; .ci/run installs it)";
