/**
 * Errors that callers of the configuration layer catch.
 *
 * @module
 */

/** Exit code for a usage or configuration error. */
export const EXIT_USAGE = 2;

/** The longest a configuration error's message gets. */
const MAX_MESSAGE = 500;

/**
 * A bad flag, variable, file or value. Its message is one line that names the
 * source; the CLI prints it and exits with {@linkcode EXIT_USAGE}.
 *
 * @example Raise and catch a configuration error
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConfigError } from "./errors.ts";
 * try {
 *   throw new ConfigError('Unknown flag --wokers (did you mean --workers?)');
 * } catch (e) {
 *   assert.ok(e instanceof ConfigError && e.exitCode === 2);
 * }
 * ```
 */
export class ConfigError extends Error {
  /** The process exit code this error maps to. */
  readonly exitCode: number = EXIT_USAGE;

  constructor(message: string, options?: { cause?: unknown }) {
    // One line, whatever the input it quotes: control characters escaped, and
    // no more than MAX_MESSAGE characters.
    // deno-lint-ignore no-control-regex
    let line = message.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
    if (line.length > MAX_MESSAGE) line = `${line.slice(0, MAX_MESSAGE)}…`;
    super(line, options);
    this.name = "ConfigError";
  }
}

/**
 * Closest candidate to `word` within a small edit distance, for "did you mean"
 * hints; `undefined` when nothing is close.
 *
 * @example Suggest a setting name
 * ```ts
 * import assert from "node:assert/strict";
 * import { suggest } from "./errors.ts";
 * assert.ok(suggest("wokers", ["workers", "timeout"]) === "workers");
 * ```
 */
export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const limit = Math.max(1, Math.min(3, Math.floor(word.length / 3)));
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

/** Adds ` (did you mean X?)` when a close candidate exists. */
export function hint(word: string, candidates: Iterable<string>, wrap = (s: string) => s): string {
  const s = suggest(word, candidates);
  return s === undefined ? "" : ` (did you mean ${wrap(s)}?)`;
}

// Optimal string alignment distance: a swap of two neighbours costs one edit.
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The first line of an error's message (or of anything thrown), for a one-line
 * report: runtimes append stacks and hints on later lines.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { firstLine } from "./errors.ts";
 * assert.ok(firstLine(new Error("EMFILE: too many open files\n    at x")) === "EMFILE: too many open files");
 * ```
 */
export function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split("\n")[0];
}
