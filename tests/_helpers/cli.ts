/**
 * Runs the forklift CLI from the checkout as a real process, under the
 * runtime running the tests, with a deadline and a clean environment.
 *
 * @module
 */
import { spawn } from "node:child_process";
import process from "node:process";
import { testRuntime } from "./runtime.ts";

/** Absolute path of the repository root. */
export const ROOT = new URL("../../", import.meta.url).pathname;
/** Absolute path of the CLI entry point. */
export const MAIN = `${ROOT}src/cli/main.ts`;

/** The argv prefix that runs a script under the current runtime. */
export function runtimeArgv(script: string): string[] {
  return testRuntime() === "deno"
    ? [process.execPath, "run", "-A", script]
    : [process.execPath, script];
}

/** The environment without any FORKLIFT_*, OTEL_*, NEW_RELIC_* or WEB_CONCURRENCY variable. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || /^(FORKLIFT|OTEL|NEW_RELIC)_/.test(k)) continue;
    if (k === "WEB_CONCURRENCY") continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** What a finished CLI process left. */
export interface CliResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `forklift ARGS` from the checkout and resolves when it exits; kills it
 * after `timeoutMs`.
 */
export function runCli(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return runProcess([...runtimeArgv(MAIN), ...args], options);
}

/**
 * Runs `argv` and resolves when it exits; kills it after `timeoutMs`. (Deno's
 * spawnSync adds the parent's environment to `env`, so this is async.)
 */
export function runProcess(
  argv: string[],
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  const [cmd, ...rest] = argv;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, rest, {
      cwd: options.cwd ?? ROOT,
      env: options.env ?? cleanEnv(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 20_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
