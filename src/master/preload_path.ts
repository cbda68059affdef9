/**
 * Where the reporter's preload module lives on disk. From a checkout it is the
 * source file; a single-file binary carries it as one bundled file (set at
 * build time) and writes it once to a cache directory, since runtimes preload
 * only real files.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { VERSION } from "../version.ts";

declare const FORKLIFT_PRELOAD_BUNDLE: string | undefined;

/** The bundled preload source, when this is a built binary. */
function bundled(): string | undefined {
  return typeof FORKLIFT_PRELOAD_BUNDLE === "string" ? FORKLIFT_PRELOAD_BUNDLE : undefined;
}

/**
 * Returns an absolute path of the preload module, writing the bundled copy to
 * `cacheDir` first when this is a built binary.
 *
 * @example
 * ```ts
 * import { preloadPath } from "./preload_path.ts";
 * console.log(preloadPath({})); // .../src/reporter/preload.ts from a checkout
 * ```
 */
export function preloadPath(env: Record<string, string | undefined>, cacheDir?: string): string {
  const source = bundled();
  if (source === undefined) {
    return fileURLToPath(new URL("../reporter/preload.ts", import.meta.url));
  }
  const hash = createHash("sha256").update(source).digest("hex").slice(0, 12);
  const base = cacheDir ?? env.XDG_RUNTIME_DIR ?? tmpdir();
  const dir = `${base}/forklift-${VERSION}-${hash}`;
  const path = `${dir}/preload.js`;
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    // Write then rename, so a concurrent master never preloads half a file.
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, source, { mode: 0o644 });
    renameSync(tmp, path);
  }
  return path;
}
