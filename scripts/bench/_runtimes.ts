/**
 * Finds the Deno and Bun executables the benchmarks run: `FORKLIFT_TEST_DENO`
 * / `FORKLIFT_TEST_BUN` when set, else the runtime running the script when it
 * is the one asked for, else the pinned version through npx.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import process from "node:process";
import { BUN_VERSION, findBun as findPinnedBun } from "../_bun.ts";

/** The Deno version forklift is built and tested with. */
export const DENO_VERSION = "2.9.6";

/** A runtime the benchmarks start workers and bare servers with. */
export type RuntimeName = "deno" | "bun";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;

/** The runtime running this script. */
export const SELF: RuntimeName = typeof g.Bun === "object" ? "bun" : "deno";

function viaNpx(pkg: string): string {
  const r = spawnSync("npx", ["-y", pkg, "eval", "console.log(process.execPath)"], {
    encoding: "utf8",
    timeout: 180_000,
  });
  const path = r.stdout?.trim().split("\n").pop() ?? "";
  if (r.status !== 0 || path === "") {
    console.error(`Cannot get ${pkg} through npx: ${r.stderr?.trim() || r.error}`);
    process.exit(1);
  }
  return path;
}

/** Absolute path of deno; exits the script when there is none. */
export function findDeno(): string {
  const fromEnv = process.env.FORKLIFT_TEST_DENO;
  if (fromEnv) return fromEnv;
  if (SELF === "deno") return process.execPath;
  return viaNpx(`deno@${DENO_VERSION}`);
}

/** Absolute path of bun; exits the script when there is none. */
export function findBun(): string {
  if (!process.env.FORKLIFT_TEST_BUN && SELF === "bun") return process.execPath;
  return findPinnedBun();
}

/** `deno 2.9.6` / `bun 1.4.5`: what `--version` says, first line. */
export function versionOf(name: RuntimeName, exe: string): string {
  const r = spawnSync(exe, ["--version"], { encoding: "utf8", timeout: 10_000 });
  const line = r.stdout?.split("\n")[0]?.trim() ?? "";
  const m = line.match(/(\d+\.\d+\.\d+)/);
  return `${name} ${m ? m[1] : line || (name === "bun" ? BUN_VERSION : DENO_VERSION)}`;
}

/** The executables of both runtimes. */
export interface Runtimes {
  deno: string;
  bun: string;
}

/**
 * The argv that runs `script` as a plain server: Deno with every permission
 * and `--unstable-net` (for `reusePort`, which forklift adds too), Bun as is.
 */
export function serverArgv(runtimes: Runtimes, name: RuntimeName, script: string): string[] {
  return name === "deno"
    ? [runtimes.deno, "run", "-A", "--unstable-net", script]
    : [runtimes.bun, script];
}
