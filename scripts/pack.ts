/**
 * Builds the npm package of the reporter API (`mod.ts`) and packs it with
 * `npm pack`: TypeScript compiles `mod.ts` and the files it imports to
 * JavaScript with declarations (runtimes refuse to strip types under
 * `node_modules`), next to `npm/package.json` and `npm/README.md`.
 *
 * Usage: deno task pack [--out DIR]   (prints the tarball's path last)
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { findBun } from "./_bun.ts";

const root = new URL("..", import.meta.url).pathname;
const { values } = parseArgs({ options: { out: { type: "string" } } });
const out = values.out ?? `${root}dist`;
const staging = `${root}dist/npm`;

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0) {
    console.error(`${[cmd.split("/").pop(), ...args.slice(0, 2)].join(" ")} failed:`);
    console.error((r.stdout + r.stderr).trim() || String(r.error));
    process.exit(1);
  }
  return r.stdout;
}

rmSync(staging, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
// --noCheck: the runtime files name Deno's and Bun's globals, which TypeScript
// has no types for here; `deno check` is what type-checks the source.
run(findBun(), [
  `${root}node_modules/typescript/bin/tsc`,
  "--noCheck",
  "--declaration",
  "--allowImportingTsExtensions",
  "--rewriteRelativeImportExtensions",
  "--target",
  "es2022",
  "--module",
  "nodenext",
  "--moduleResolution",
  "nodenext",
  "--types",
  "",
  "--rootDir",
  root,
  "--outDir",
  staging,
  `${root}mod.ts`,
], root);

const manifest = JSON.parse(readFileSync(`${root}npm/package.json`, "utf8"));
const version = /VERSION = "([^"]+)"/.exec(
  readFileSync(`${root}src/protocol/version.ts`, "utf8"),
)?.[1];
// Declarations keep the source's `.ts` specifiers, which a project without
// allowImportingTsExtensions rejects: point them at the emitted `.js`.
function rewriteDeclarations(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) rewriteDeclarations(path);
    else if (entry.name.endsWith(".d.ts")) {
      const text = readFileSync(path, "utf8")
        .replace(/^( \* import .* from )"\.\/mod\.ts";/gm, `$1"${manifest.name}";`)
        .replace(/((?:from\s+|import\(\s*)"\.{1,2}\/[^"]+)\.ts"/g, '$1.js"');
      writeFileSync(path, text);
    }
  }
}
rewriteDeclarations(staging);
// Deno takes a plain `.js` import untyped unless the file names its
// declarations: each names its own, so an unpacked copy imported by path
// (`import "./vendor/forklift/mod.js"`) is typed as the installed package is.
function nameDeclarations(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) nameDeclarations(path);
    else if (entry.name.endsWith(".js")) {
      const types = `${entry.name.slice(0, -3)}.d.ts`;
      if (!existsSync(`${dir}/${types}`)) continue;
      writeFileSync(path, `// @ts-self-types="./${types}"\n${readFileSync(path, "utf8")}`);
    }
  }
}
nameDeclarations(staging);

if (manifest.version !== version) {
  console.error(`npm/package.json has version ${manifest.version}, forklift is ${version}`);
  process.exit(1);
}
copyFileSync(`${root}npm/package.json`, `${staging}/package.json`);
copyFileSync(`${root}npm/README.md`, `${staging}/README.md`);
const packed = run("npm", ["pack", "--silent", "--pack-destination", out], staging).trim();
console.log(`${out}/${packed.split("\n").pop()}`);
