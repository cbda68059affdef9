/**
 * Test helpers that know which runtime runs the tests and how to start a
 * worker process on Deno or Bun, with or without the injected preload. The
 * only test code that looks at the `Deno` / `Bun` globals.
 *
 * @module
 */

import process from "node:process";
import { fileURLToPath } from "node:url";

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

/** The runtime running the tests. */
export function testRuntime(): RuntimeName {
  if (typeof (globalThis as { Deno?: unknown }).Deno !== "undefined") return "deno";
  if (typeof (globalThis as { Bun?: unknown }).Bun !== "undefined") return "bun";
  throw new Error("Tests run on Deno or Bun only");
}

/**
 * The runtimes to try as workers: the one running the tests, plus the other
 * one when `FORKLIFT_TEST_DENO` / `FORKLIFT_TEST_BUN` gives its path.
 */
export function workerRuntimes(): WorkerRuntime[] {
  const own = testRuntime();
  const out: WorkerRuntime[] = [{ name: own, exec: process.execPath }];
  const other: RuntimeName = own === "deno" ? "bun" : "deno";
  const path = process.env[other === "deno" ? "FORKLIFT_TEST_DENO" : "FORKLIFT_TEST_BUN"];
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
