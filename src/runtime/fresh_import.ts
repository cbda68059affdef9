/**
 * A module specifier that makes the runtime evaluate a file again, as it is
 * now, instead of answering from its module cache: what a reload needs to
 * take an edited hooks module. The runtimes differ: Deno keys its cache by
 * URL, so a query on the file URL is a new module; Bun drops the query of a
 * `file:` URL and keys by path, but keeps the query of a plain path.
 *
 * @module
 */
import { pathToFileURL } from "node:url";
import { runtimeId } from "./detect.ts";

/**
 * The specifier of `path` (absolute) for its `load`th import: the file URL
 * itself the first time, one the runtime has not cached after that.
 *
 * @example The first import, then a fresh one
 * ```ts
 * import assert from "node:assert/strict";
 * import { freshSpecifier } from "./fresh_import.ts";
 * assert.equal(freshSpecifier("/srv/hooks.ts", 1), "file:///srv/hooks.ts");
 * assert.match(freshSpecifier("/srv/hooks.ts", 2), /^(file:\/\/)?\/srv\/hooks\.ts\?reload=2$/);
 * ```
 */
export function freshSpecifier(path: string, load: number): string {
  const url = pathToFileURL(path);
  if (load <= 1) return url.href;
  if (runtimeId().startsWith("bun/")) return `${path}?reload=${load}`;
  url.search = `reload=${load}`;
  return url.href;
}
