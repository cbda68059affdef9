/**
 * Programs some tests need beside the runtimes (python3, unshare, …): a test
 * that cannot run without one is skipped, with the reason, never passed
 * silently; under CI, where `.ci/run` installs them, it runs and fails instead.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import process from "node:process";

/**
 * The `skip` option of a test that needs `argv` to run and exit 0: false when
 * it does (or under CI), else the reason.
 */
export function needs(argv: string[], reason: string): string | false {
  if (process.env.CI) return false;
  const r = spawnSync(argv[0], argv.slice(1), { stdio: "ignore", timeout: 5_000 });
  return r.error === undefined && r.status === 0 ? false : reason;
}

/** The `skip` option of a test that runs python3. */
export const NEEDS_PYTHON: string | false = needs(["python3", "--version"], "needs python3");
