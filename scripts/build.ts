/**
 * Builds the single-file binary `dist/forklift` with `bun build --compile`.
 * The reporter's preload is bundled into one file first and embedded in the
 * binary, which writes it to a cache directory at run time (runtimes preload
 * only real files).
 *
 * Usage: deno task build [--outfile PATH] [--preload-only]
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { findBun } from "./_bun.ts";
import { BYTECODE_PARTS, fnv1a } from "../src/master/preload_path.ts";
import { dashboardSources } from "../src/export/dashboard_assets.ts";

const root = new URL("..", import.meta.url).pathname;
const { values } = parseArgs({
  options: { outfile: { type: "string" }, "preload-only": { type: "boolean" } },
});
const outfile = values.outfile ?? `${root}dist/forklift`;
const bun = findBun();
mkdirSync(`${root}dist`, { recursive: true });

function run(args: string[]): void {
  const r = spawnSync(bun, args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`bun ${args.slice(0, 2).join(" ")} failed`);
    process.exit(1);
  }
}

// The preload runs inside the user's Deno or Bun program: plain ESM with the
// node: built-ins left as imports, and for Bun a CommonJS build with its
// bytecode, which Bun loads without parsing.
const preload = `${root}dist/preload.js`;
run([
  "build",
  "src/reporter/preload.ts",
  "--target=node",
  "--format=esm",
  "--minify",
  "--outfile",
  preload,
]);
const bunDir = `${root}dist/bun`;
run([
  "build",
  "src/reporter/preload.ts",
  "--target=bun",
  "--format=cjs",
  "--bytecode",
  "--minify",
  "--outdir",
  bunDir,
]);
if (values["preload-only"]) {
  console.log(`built ${preload} and ${bunDir}/preload.js`);
  process.exit(0);
}
const source = readFileSync(preload, "utf8");
const bunSource = readFileSync(`${bunDir}/preload.js`, "utf8");
const bunBytecode = readFileSync(`${bunDir}/preload.js.jsc`);
const hash = fnv1a(source) + fnv1a(bunSource) + fnv1a(bunBytecode.toString("latin1"));
const define = (name: string, value: string) => ["--define", `${name}=${JSON.stringify(value)}`];
// One argument may hold at most 128 KiB (Linux's MAX_ARG_STRLEN): the
// bytecode goes in parts, which the binary joins again.
const PART = 96 * 1024;
const encoded = bunBytecode.toString("base64");
const parts = Math.ceil(encoded.length / PART);
if (parts > BYTECODE_PARTS) {
  console.error(`the Bun preload's bytecode needs ${parts} parts; raise BYTECODE_PARTS`);
  process.exit(1);
}
const bytecodeDefines = Array.from(
  { length: parts },
  (_, i) => define(`FORKLIFT_PRELOAD_BUN_BYTECODE_${i}`, encoded.slice(i * PART, (i + 1) * PART)),
).flat();
// The dashboard page's files (uPlot's vendored copy, then the page's own),
// carried as strings: the binary serves them with no file beside it.
const dashboard = dashboardSources();
for (const [name, text] of Object.entries(dashboard)) {
  if (JSON.stringify(text).length > 120 * 1024) {
    console.error(`the dashboard's ${name} is past one argument's 128 KiB; split it`);
    process.exit(1);
  }
}
// Bytecode and split chunks: the binary parses nothing at start and loads a
// command's modules only when that command runs.
run([
  "build",
  "--compile",
  "--minify",
  "--bytecode",
  "--format=esm",
  "--splitting",
  "src/cli/main.ts",
  "--outfile",
  outfile,
  ...define("FORKLIFT_PRELOAD_BUNDLE", source),
  ...define("FORKLIFT_PRELOAD_BUN", bunSource),
  ...bytecodeDefines,
  ...define("FORKLIFT_PRELOAD_HASH", hash),
  ...define("FORKLIFT_DASHBOARD_HTML", dashboard.html),
  ...define("FORKLIFT_DASHBOARD_JS", dashboard.js),
  ...define("FORKLIFT_DASHBOARD_CSS", dashboard.css),
]);
console.log(`built ${outfile}`);
