/**
 * Reads forklift's INI file into sections of `key = value` entries that keep
 * their line numbers, so every error and every origin can name its line.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "./errors.ts";

/** One `key = value` line. */
export interface IniEntry {
  key: string;
  value: string;
  line: number;
}

/** A parsed INI file: entries per section, in file order. */
export interface IniFile {
  /** The path as the user gave it, for messages and origins. */
  path: string;
  sections: Map<string, IniEntry[]>;
  /** The line of each section's first `[name]` header. */
  sectionLines: Map<string, number>;
}

const FS_REASONS: Record<string, string> = {
  ENOENT: "no such file",
  EISDIR: "it is a directory",
  EACCES: "permission denied",
  EPERM: "permission denied",
  ENOTDIR: "a part of the path is not a directory",
  ELOOP: "too many symbolic links",
};

/**
 * One-line reason for a failed read, from a Node-style error code.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeReadError } from "./ini_file.ts";
 * assert.ok(describeReadError({ code: "EISDIR" }) === "it is a directory");
 * ```
 */
export function describeReadError(error: unknown): string {
  const code = (error as { code?: string })?.code ?? "";
  return FS_REASONS[code] ?? ((error as Error)?.message?.split("\n")[0] || "unreadable");
}

/**
 * A value as written, without the quotes around it when it has a pair. `#`
 * and `;` start a comment only at the beginning of a line, as in Python's
 * configparser: inside a value they are part of it (`key=ab#cd`).
 */
function unquote(v: string): string {
  const q = v[0];
  return v.length >= 2 && (q === '"' || q === "'") && v.at(-1) === q ? v.slice(1, -1) : v;
}

/**
 * Parses INI text. Lines starting with `;` or `#` are comments; a value is
 * the rest of its line, with one pair of surrounding quotes removed.
 *
 * @example Parse two sections
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIni } from "./ini_file.ts";
 * const f = parseIni("[forklift]\nworkers = 2\n[forklift:production]\nworkers = 8\n", "f.ini");
 * assert.ok(f.sections.get("forklift:production")![0].value === "8");
 * ```
 */
export function parseIni(text: string, path: string): IniFile {
  const sections = new Map<string, IniEntry[]>();
  const sectionLines = new Map<string, number>();
  let current: IniEntry[] | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    const t = raw.trim();
    const line = i + 1;
    if (t === "" || t.startsWith(";") || t.startsWith("#")) continue;
    const section = /^\[([^\]]*)\]$/.exec(t);
    if (section) {
      const name = section[1].trim();
      if (name === "") {
        throw new ConfigError(`Cannot parse ${path} line ${line}: empty section name`);
      }
      current = sections.get(name) ?? [];
      sections.set(name, current);
      if (!sectionLines.has(name)) sectionLines.set(name, line);
      continue;
    }
    const eq = t.indexOf("=");
    if (eq <= 0) {
      // The line itself is not repeated: it may hold a secret.
      throw new ConfigError(
        `Cannot parse ${path} line ${line}: expected "key = value" or "[section]"`,
      );
    }
    const key = t.slice(0, eq).trim();
    if (current === undefined) {
      throw new ConfigError(
        `Cannot parse ${path} line ${line}: "${key}" comes before any [forklift] section`,
      );
    }
    current.push({ key, value: unquote(t.slice(eq + 1).trim()), line });
  }
  return { path, sections, sectionLines };
}

/**
 * Reads and parses an INI file; a missing, unreadable or directory path is a
 * {@linkcode ConfigError} that names it.
 *
 * @example Read a file
 * ```ts ignore
 * import { readIniFile } from "./ini_file.ts";
 * const f = readIniFile("forklift.ini", "/srv/app");
 * ```
 */
export function readIniFile(path: string, cwd: string, origin: string): IniFile {
  let text: string;
  try {
    text = readFileSync(path.startsWith("/") ? path : `${cwd}/${path}`, "utf8");
  } catch (e) {
    throw new ConfigError(
      `Cannot read config file ${path} (from ${origin}): ${describeReadError(e)}`,
      { cause: e },
    );
  }
  return parseIni(text, path);
}
