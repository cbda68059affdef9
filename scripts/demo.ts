/**
 * The README's demo: `forklift run -w 2` over examples/hello.ts, with metrics
 * on localhost. Stop it with Ctrl-C.
 *
 * Deno installs a package.json whole on the first package a program imports,
 * devDependencies included: the test suite's frameworks and tools made a cold
 * demo download 186 packages (108 MB, 22-28 s) and warn about their build
 * scripts. So this script imports nothing but `node:` built-ins and runs the
 * demo (`_demo.ts`) with package.json out of sight (`DENO_NO_PACKAGE_JSON`)
 * and an import map of the `dependencies` alone, at their pinned versions.
 *
 * Usage: deno task demo
 *
 * @module
 */
import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";

const root = new URL("..", import.meta.url).pathname;

/**
 * An import map of package.json's `dependencies` as `npm:` specifiers, the
 * package and its subpaths.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dependencyImports } from "./demo.ts";
 * assert.deepEqual(dependencyImports({ dependencies: { a: "1.2.3" }, devDependencies: { b: "1" } }), {
 *   imports: { a: "npm:a@1.2.3", "a/": "npm:/a@1.2.3/" },
 * });
 * ```
 */
export function dependencyImports(pkg: { dependencies?: Record<string, string> }): {
  imports: Record<string, string>;
} {
  const imports: Record<string, string> = {};
  for (const [name, version] of Object.entries(pkg.dependencies ?? {})) {
    imports[name] = `npm:${name}@${version}`;
    imports[`${name}/`] = `npm:/${name}@${version}/`;
  }
  return { imports };
}

if (import.meta.main) {
  const pkg = JSON.parse(readFileSync(`${root}package.json`, "utf8"));
  const dir = mkdtempSync(`${tmpdir()}/forklift-demo-`);
  writeFileSync(`${dir}/imports.json`, JSON.stringify(dependencyImports(pkg)));
  // The checkout's lock pins each package's integrity; Deno may rewrite its copy.
  copyFileSync(`${root}deno.lock`, `${dir}/deno.lock`);
  const child = spawn(process.execPath, [
    "run",
    "-A",
    "--node-modules-dir=none",
    `--import-map=${dir}/imports.json`,
    `--lock=${dir}/deno.lock`,
    `${root}scripts/_demo.ts`,
  ], { stdio: "inherit", env: { ...process.env, DENO_NO_PACKAGE_JSON: "1" } });
  // The demo's master acts on the signal (Ctrl-C reaches both of us: a second
  // INT is as quick a stop as the first); this one exits with it.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => child.kill(signal));
  }
  child.on("exit", (code, signal) => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(code ?? (signal === "SIGINT" ? 130 : 1));
  });
}
