/**
 * Copies uPlot's browser build (script and stylesheet) from `node_modules`,
 * at the version package.json pins, into `src/export/dashboard/vendor/`,
 * where the master reads it when run from source: the demo runs with no
 * `node_modules` at all, and the binary embeds these same files. With
 * `--check`, changes nothing and exits 1 when a copy differs.
 *
 * Usage: deno task dashboard:vendor [--check]
 *
 * @module
 */
import { readFileSync, writeFileSync } from "node:fs";
import process from "node:process";

const root = new URL("..", import.meta.url).pathname;

/** Each vendored file: where it comes from in node_modules, and where it goes. */
export const VENDORED: ReadonlyArray<{ from: string; to: string }> = [
  { from: "node_modules/uplot/dist/uPlot.iife.min.js", to: "src/export/dashboard/vendor/uplot.js" },
  { from: "node_modules/uplot/dist/uPlot.min.css", to: "src/export/dashboard/vendor/uplot.css" },
];

/**
 * The vendored files that differ from their source in `node_modules`, by path.
 *
 * @example
 * ```ts ignore
 * import { staleVendored } from "./dashboard_vendor.ts";
 * console.log(staleVendored());
 * ```
 */
export function staleVendored(base = root): string[] {
  return VENDORED.filter(({ from, to }) => {
    let held = "";
    try {
      held = readFileSync(`${base}${to}`, "utf8");
    } catch {
      // Missing: stale.
    }
    return held !== readFileSync(`${base}${from}`, "utf8");
  }).map(({ to }) => to);
}

if (import.meta.main) {
  const check = process.argv.includes("--check");
  const stale = staleVendored();
  if (check) {
    for (const path of stale) {
      console.error(`${path} differs from node_modules: run deno task dashboard:vendor`);
    }
    process.exit(stale.length > 0 ? 1 : 0);
  }
  for (const { from, to } of VENDORED) {
    writeFileSync(`${root}${to}`, readFileSync(`${root}${from}`));
  }
  console.log(`copied ${VENDORED.length} files into src/export/dashboard/vendor/`);
}
