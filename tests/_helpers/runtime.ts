/**
 * Test helpers that know which runtime runs the tests and how to start a
 * worker process on Deno or Bun, with or without the injected preload. Every
 * test asks here which runtime it runs on.
 *
 * @module
 */

import process from "node:process";
import { fileURLToPath } from "node:url";
import { runtimeId } from "../../src/runtime/detect.ts";

/** Runtime names a worker may run on. */
export type RuntimeName = "deno" | "bun";

/** How to start one runtime as a worker. */
export interface WorkerRuntime {
  name: RuntimeName;
  /** Path of the runtime's executable. */
  exec: string;
}

/** Absolute path of the preload module forklift injects. */
export const PRELOAD = fileURLToPath(
  new URL("../../src/reporter/preload.ts", import.meta.url),
);

/** Absolute path of a fixture under tests/fixtures/. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
}

/** The runtime running the tests, as the project itself detects it. */
export function testRuntime(): RuntimeName {
  const name = runtimeId().split("/")[0];
  if (name === "deno" || name === "bun") return name;
  throw new Error("Tests run on Deno or Bun only");
}

/**
 * Paths of the two runtimes: the one running the tests, and the other one
 * when `FORKLIFT_TEST_DENO` / `FORKLIFT_TEST_BUN` gives its path (either
 * variable wins for its runtime).
 */
export const RUNTIMES: Record<RuntimeName, string | undefined> = {
  deno: process.env.FORKLIFT_TEST_DENO ??
    (testRuntime() === "deno" ? process.execPath : undefined),
  bun: process.env.FORKLIFT_TEST_BUN ?? (testRuntime() === "bun" ? process.execPath : undefined),
};

/** The runtimes to try as workers: the one running the tests first, then the other if known. */
export function workerRuntimes(): WorkerRuntime[] {
  const own = testRuntime();
  const out: WorkerRuntime[] = [{ name: own, exec: process.execPath }];
  const other: RuntimeName = own === "deno" ? "bun" : "deno";
  const path = RUNTIMES[other];
  if (path) out.push({ name: other, exec: path });
  return out;
}

/** How a worker is launched. */
export interface LaunchOptions {
  /** Inject src/reporter/preload.ts as forklift does. */
  preload?: boolean;
  /** Serve an `export default { fetch }` module (Deno: `DENO_AUTO_SERVE=1`). */
  autoServe?: boolean;
  /** Deno permission flags instead of `-A`. */
  denoPermissions?: string[];
}

/** Argv (after the executable) and extra env to start `file` on `rt`. */
export function launch(
  rt: WorkerRuntime,
  file: string,
  options: LaunchOptions = {},
): { args: string[]; env: Record<string, string> } {
  const env: Record<string, string> = {};
  if (rt.name === "deno") {
    const args = ["run", ...(options.denoPermissions ?? ["-A"])];
    if (options.preload) args.push("--unstable-net", "--preload", PRELOAD);
    if (options.autoServe) env.DENO_AUTO_SERVE = "1";
    args.push(file);
    return { args, env };
  }
  if (options.preload) env.BUN_OPTIONS = `--preload=${PRELOAD}`;
  return { args: [file], env };
}
