import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ROOT } from "../_helpers/cli.ts";
import { staleVendored } from "../../scripts/dashboard_vendor.ts";

test("staleVendored() finds the dashboard's copy of uPlot the same as the version package.json pins", () => {
  const pinned = JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")).devDependencies.uplot;
  const installed = JSON.parse(readFileSync(`${ROOT}node_modules/uplot/package.json`, "utf8"));
  assert.equal(installed.version, pinned);
  assert.deepEqual(staleVendored(ROOT), []);
  assert.ok(
    readFileSync(`${ROOT}src/export/dashboard/vendor/uplot.js`, "utf8").includes(`(v${pinned})`),
  );
});
