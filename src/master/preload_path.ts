/**
 * Where the reporter's preload module lives on disk. From a checkout it is the
 * source file; a single-file binary carries it as one bundled file (set at
 * build time) and writes it once to a cache directory, since runtimes preload
 * only real files.
 *
 * @module
 */
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { VERSION } from "../protocol/version.ts";

declare const FORKLIFT_PRELOAD_BUNDLE: string | undefined;
declare const FORKLIFT_PRELOAD_BUN: string | undefined;
declare const FORKLIFT_PRELOAD_BUN_BYTECODE_0: string | undefined;
declare const FORKLIFT_PRELOAD_BUN_BYTECODE_1: string | undefined;
declare const FORKLIFT_PRELOAD_BUN_BYTECODE_2: string | undefined;
declare const FORKLIFT_PRELOAD_BUN_BYTECODE_3: string | undefined;
declare const FORKLIFT_PRELOAD_HASH: string | undefined;

/** How many parts the build may split the Bun preload's bytecode (base64) into. */
export const BYTECODE_PARTS = 4;

/** The Bun preload's bytecode in base64, joined from its parts; undefined in a checkout. */
function bunBytecode(): string | undefined {
  if (typeof FORKLIFT_PRELOAD_BUN_BYTECODE_0 !== "string") return undefined;
  // Each name is written out: the build replaces only names it sees.
  const parts = [
    FORKLIFT_PRELOAD_BUN_BYTECODE_0,
    typeof FORKLIFT_PRELOAD_BUN_BYTECODE_1 === "string" ? FORKLIFT_PRELOAD_BUN_BYTECODE_1 : "",
    typeof FORKLIFT_PRELOAD_BUN_BYTECODE_2 === "string" ? FORKLIFT_PRELOAD_BUN_BYTECODE_2 : "",
    typeof FORKLIFT_PRELOAD_BUN_BYTECODE_3 === "string" ? FORKLIFT_PRELOAD_BUN_BYTECODE_3 : "",
  ];
  return parts.join("");
}

/** Where each runtime's workers preload the reporter from. */
export interface PreloadPaths {
  /** ES module: Deno workers, and Bun workers when there is no Bun build. */
  deno: string;
  /** Bun workers: a CommonJS build whose bytecode sits next to it. */
  bun: string;
}

/** A file to write into the cache directory; its content is made only when written. */
interface CacheFile {
  name: string;
  data: () => string | Uint8Array;
}

/**
 * The bundled preload files, when this is a built binary: set at build time
 * by `bun build --define`, or, in a `deno compile` binary, the bundle it was
 * compiled with (`--include dist/preload.js`). Bun's build comes with its
 * bytecode, which spares each Bun worker about 2 ms of parsing at start.
 */
function bundled(compiled: boolean): { files: CacheFile[]; bun: boolean } | undefined {
  if (typeof FORKLIFT_PRELOAD_BUNDLE === "string") {
    const files: CacheFile[] = [{ name: "preload.js", data: () => FORKLIFT_PRELOAD_BUNDLE! }];
    const bytecode = bunBytecode();
    const bun = typeof FORKLIFT_PRELOAD_BUN === "string" && bytecode !== undefined;
    if (bun) {
      // The bytecode first: the source is what marks the set complete.
      files.unshift(
        { name: "preload.bun.js.jsc", data: () => fromBase64(bytecode!) },
        { name: "preload.bun.js", data: () => FORKLIFT_PRELOAD_BUN! },
      );
    }
    return { files, bun };
  }
  if (!compiled) return undefined;
  try {
    const source = readFileSync(new URL("../../dist/preload.js", import.meta.url), "utf8");
    return { files: [{ name: "preload.js", data: () => source }], bun: false };
  } catch {
    return undefined;
  }
}

function fromBase64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Returns absolute paths of the preload modules, writing the bundled copies
 * to `cacheDir` first when this is a built binary.
 *
 * @example
 * ```ts
 * import { preloadPath } from "./preload_path.ts";
 * console.log(preloadPath({}).deno); // .../src/reporter/preload.ts from a checkout
 * ```
 */
export function preloadPath(
  env: Record<string, string | undefined>,
  compiled = false,
  cacheDir?: string,
): PreloadPaths {
  const bundle = bundled(compiled);
  if (bundle === undefined) {
    const source = fileURLToPath(new URL("../reporter/preload.ts", import.meta.url));
    return { deno: source, bun: source };
  }
  // The build computes the hash; hashing ~50 KB here would sit on the start-up path.
  const hash = typeof FORKLIFT_PRELOAD_HASH === "string"
    ? FORKLIFT_PRELOAD_HASH
    : fnv1a(String(bundle.files.find((f) => f.name === "preload.js")!.data()));
  const base = (cacheDir ?? env.XDG_RUNTIME_DIR ?? tmpdir()).replace(/\/+$/, "");
  const uid = typeof process.getuid === "function" ? process.getuid() : -1;
  // The name is predictable: another user may have made it first. Only a
  // directory of this user's that nobody else may write is used; else a new one.
  mkdirSync(base, { recursive: true, mode: 0o700 });
  let dir = `${base}/forklift-${uid}-${VERSION}-${hash}`;
  if (!privateDir(dir, uid)) dir = mkdtempSync(`${base}/forklift-`);
  for (const file of bundle.files) {
    const path = `${dir}/${file.name}`;
    const data = file.data();
    if (sameFile(path, data, uid)) continue;
    // Write then rename, so a concurrent master never preloads half a file.
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, data, { mode: 0o600 });
    renameSync(tmp, path);
  }
  const deno = `${dir}/preload.js`;
  return { deno, bun: bundle.bun ? `${dir}/preload.bun.js` : deno };
}

/**
 * Makes `dir` (mode 0700) or checks the one there: a real directory (no
 * symbolic link followed), owned by `uid`, that no one else may write into.
 */
function privateDir(dir: string, uid: number): boolean {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as { code?: string }).code !== "EEXIST") return false;
  }
  try {
    const st = lstatSync(dir);
    return st.isDirectory() && (uid < 0 || st.uid === uid) && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/**
 * Whether `path` is a regular file of `uid`'s, writable by no one else, with
 * exactly `data` in it: the proof that a worker may preload it.
 */
function sameFile(path: string, data: string | Uint8Array, uid: number): boolean {
  try {
    const st = lstatSync(path);
    if (!st.isFile() || (uid >= 0 && st.uid !== uid) || (st.mode & 0o022) !== 0) return false;
    const expected = typeof data === "string" ? new TextEncoder().encode(data) : data;
    if (st.size !== expected.length) return false;
    return readFileSync(path).equals(expected);
  } catch {
    return false;
  }
}

/**
 * A 32-bit FNV-1a hash in hex: enough to tell bundles apart, without loading
 * node:crypto.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fnv1a } from "./preload_path.ts";
 * assert.ok(fnv1a("") === "811c9dc5");
 * ```
 */
export function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}
