/**
 * Durations as the settings read them: seconds in forklift's own names, and
 * milliseconds in the `OTEL_*` variables. The settings registry and the
 * standalone reporter both read them here, so one text means one duration
 * wherever it is given. Nothing here imports anything: the standalone
 * reporter ships it inside every worker.
 *
 * @module
 */

/**
 * The longest duration a setting may give, in seconds: every one becomes a
 * timer, and a timer longer than 2^31-1 ms fires at once, in both runtimes.
 */
export const MAX_SECONDS: number = Math.floor((2 ** 31 - 1) / 1000);

/** Said after a value longer than {@linkcode MAX_SECONDS}. */
export const TOO_LONG = `longer than the ${MAX_SECONDS} seconds (24.8 days) a timer can wait`;

/**
 * Reads a number of seconds (`30`, `2.5`); throws a `TypeError` for another
 * form, a `RangeError` for 0 (unless allowed) or beyond {@linkcode MAX_SECONDS}.
 *
 * @example Seconds as a setting reads them
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSeconds } from "./durations.ts";
 * assert.equal(parseSeconds("2.5", false), 2.5);
 * assert.throws(() => parseSeconds("0", false), RangeError);
 * assert.throws(() => parseSeconds("1e3", false), TypeError);
 * ```
 */
export function parseSeconds(raw: string, allowZero: boolean): number {
  const t = raw.trim();
  if (!/^\d+(\.\d+)?$/.test(t)) throw new TypeError("not a number of seconds");
  const n = Number(t);
  if (!Number.isFinite(n) || (!allowZero && n === 0)) throw new RangeError("out of range");
  if (n > MAX_SECONDS) throw new RangeError(TOO_LONG);
  return n;
}

/**
 * An `OTEL_*` duration, in milliseconds (`1500`, `1500.5`), rewritten as the
 * seconds a setting reads (`1.5`, `1.5005`). The decimal point moves in the
 * text, so no float rounding creeps in; any other text is returned as is, for
 * the setting's parser to refuse.
 *
 * @example Milliseconds into seconds, exactly
 * ```ts
 * import assert from "node:assert/strict";
 * import { msToSeconds } from "./durations.ts";
 * assert.equal(msToSeconds("1500.5"), "1.5005");
 * assert.equal(msToSeconds("15000"), "15");
 * assert.equal(msToSeconds("7"), "0.007");
 * assert.equal(msToSeconds("soon"), "soon");
 * ```
 */
export function msToSeconds(ms: string): string {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(ms.trim());
  if (m === null) return ms;
  const whole = m[1].padStart(4, "0");
  const int = whole.slice(0, -3).replace(/^0+(?=\d)/, "");
  const frac = `${whole.slice(-3)}${m[2] ?? ""}`.replace(/0+$/, "");
  return frac === "" ? int : `${int}.${frac}`;
}

/**
 * Reads an `OTEL_*` duration in milliseconds, as the settings registry reads
 * `OTEL_METRIC_EXPORT_INTERVAL`; throws as {@linkcode parseSeconds} does.
 * Whole milliseconds: a timer takes no finer value.
 *
 * @example An OTel interval in whole milliseconds
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseOtelMs } from "./durations.ts";
 * assert.equal(parseOtelMs("1500.5"), 1501);
 * assert.throws(() => parseOtelMs("0x10"), TypeError);
 * ```
 */
export function parseOtelMs(raw: string): number {
  return Math.round(parseSeconds(msToSeconds(raw), false) * 1000);
}
