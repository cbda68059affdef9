/**
 * Small statistics and number formatting for the result tables.
 *
 * @module
 */

/** The median of `xs` (mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * The median of `a[i] / b[i]`: for rounds measured in pairs, back to back, so
 * that drift slower than a pair cancels out within each ratio.
 */
export function pairedRatio(a: readonly number[], b: readonly number[]): number {
  return median(a.map((x, i) => x / b[i]));
}

/** The smallest of `xs`. */
export function min(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : Math.min(...xs);
}

/** `x` with `digits` significant figures, no exponent for everyday sizes. */
export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return "0";
  const mag = Math.floor(Math.log10(Math.abs(x)));
  const decimals = Math.max(0, digits - 1 - mag);
  return x.toFixed(Math.min(decimals, 6));
}

/**
 * A fraction as a signed percentage, `+3.1%` or `−0.80%`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { signedPct } from "./_stats.ts";
 * assert.equal(signedPct(-0.008), "−0.80%");
 * ```
 */
export function signedPct(x: number): string {
  return `${x >= 0 ? "+" : "−"}${fmt(Math.abs(x) * 100, 2)}%`;
}
