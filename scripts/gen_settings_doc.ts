/**
 * Writes docs/settings.md from the settings registry; with `--check`, fails
 * when the committed file differs from what the registry gives.
 *
 * Usage: deno task docs [--check]
 *
 * @module
 */
import { readFileSync, writeFileSync } from "node:fs";
import process from "node:process";
import { renderSettingsDoc } from "../src/config/settings_doc.ts";

const path = new URL("../docs/settings.md", import.meta.url).pathname;
const want = renderSettingsDoc();
if (process.argv.includes("--check")) {
  let have = "";
  try {
    have = readFileSync(path, "utf8");
  } catch {
    // A missing file is stale too.
  }
  if (have !== want) {
    console.error("docs/settings.md is stale: run `deno task docs` and commit the result");
    process.exit(1);
  }
  console.log("docs/settings.md is current");
} else {
  writeFileSync(path, want);
  console.log("wrote docs/settings.md");
}
