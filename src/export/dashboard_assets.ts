/**
 * The dashboard page's files: the HTML, one script (uPlot, then the page's
 * own code) and one stylesheet. The compiled binary carries them as strings
 * defined at build time (see `scripts/build.ts`); from source they are read
 * once, on first request, from `src/export/dashboard/`, which holds a copy of
 * uPlot's browser build (`deno task dashboard:vendor` refreshes it from the
 * version package.json pins): `deno task demo` runs with no `node_modules`,
 * and neither it nor the tests need a build step.
 *
 * @module
 */
import { readFileSync } from "node:fs";

declare const FORKLIFT_DASHBOARD_HTML: string | undefined;
declare const FORKLIFT_DASHBOARD_JS: string | undefined;
declare const FORKLIFT_DASHBOARD_CSS: string | undefined;

/** One file of the page. */
export interface DashboardAsset {
  type: string;
  body: string;
}

let cache: Map<string, DashboardAsset> | undefined;

function sourceFile(relative: string): string {
  return readFileSync(new URL(relative, import.meta.url), "utf8");
}

/**
 * Builds the page's script and stylesheet from the source tree: uPlot's
 * browser build, then the page's own files.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dashboardSources } from "./dashboard_assets.ts";
 * assert.ok(dashboardSources().js.includes("uPlot"));
 * ```
 */
export function dashboardSources(): { html: string; js: string; css: string } {
  return {
    html: sourceFile("./dashboard/index.html"),
    js: sourceFile("./dashboard/vendor/uplot.js") + "\n" + sourceFile("./dashboard/app.js"),
    css: sourceFile("./dashboard/vendor/uplot.css") + "\n" + sourceFile("./dashboard/style.css"),
  };
}

/**
 * The file served at `path`, or undefined for any other path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dashboardAsset } from "./dashboard_assets.ts";
 * assert.ok(dashboardAsset("/")?.type.startsWith("text/html"));
 * ```
 */
export function dashboardAsset(path: string): DashboardAsset | undefined {
  if (cache === undefined) {
    let files;
    if (typeof FORKLIFT_DASHBOARD_JS === "string") {
      files = {
        html: FORKLIFT_DASHBOARD_HTML!,
        js: FORKLIFT_DASHBOARD_JS,
        css: FORKLIFT_DASHBOARD_CSS!,
      };
    } else {
      files = dashboardSources();
    }
    cache = new Map([
      ["/", { type: "text/html; charset=utf-8", body: files.html }],
      ["/dashboard.js", { type: "text/javascript; charset=utf-8", body: files.js }],
      ["/dashboard.css", { type: "text/css; charset=utf-8", body: files.css }],
    ]);
  }
  return cache.get(path);
}
