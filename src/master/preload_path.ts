/**
 * Where the reporter's preload module lives on disk. From a checkout it is the
 * source file; a single-file binary carries it as one bundled file (set at
 * build time) and writes it once to a cache directory, since runtimes preload
 * only real files.
 *
 * @module
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { VERSION } from "../version.ts";

declare const FORKLIFT_PRELOAD_BUNDLE: string | undefined;

/**
 * The bundled preload source, when this is a built binary: set at build time
 * by `bun build --define`, or, in a `deno compile` binary, the bundle it was
 * compiled with (`--include dist/preload.js`).
 */
function bundled(compiled: boolean): string | undefined {
  if (typeof FORKLIFT_PRELOAD_BUNDLE === "string") return FORKLIFT_PRELOAD_BUNDLE;
  if (!compiled) return undefined;
  try {
    return readFileSync(new URL("../../dist/preload.js", import.meta.url), "utf8");
  } catch {
    return undefined;
  }
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
export function preloadPath(
  env: Record<string, string | undefined>,
  compiled = false,
  cacheDir?: string,
): string {
  const source = bundled(compiled);
  if (source === undefined) {
    return fileURLToPath(new URL("../reporter/preload.ts", import.meta.url));
  }
  const hash = fnv1a(source);
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

/** A 32-bit FNV-1a hash in hex: enough to tell bundles apart, without loading node:crypto. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}
