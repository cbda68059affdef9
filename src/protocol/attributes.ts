/**
 * Attribute conventions both ends of the protocol share: the overflow marker
 * and the one canonical form (and key) of an attribute set.
 *
 * @module
 */
import type { Attributes, AttributeValue } from "./messages.ts";

/** The attribute that marks the one series holding points beyond the cardinality limit. */
export const OVERFLOW_ATTRIBUTE = "otel.metric.overflow";

/** Most series one instrument keeps before new ones go to the overflow series. */
export const CARDINALITY_LIMIT = 2000;

/** An attribute set in canonical form and the key that names it. */
export interface CanonicalAttributes {
  /** Keys sorted, values strings, finite numbers or booleans. */
  attributes: Attributes;
  /** The same string for sets that differ only in key order, different ones for `"1"` and `1`. */
  key: string;
}

function cleanValue(v: unknown): AttributeValue | undefined {
  switch (typeof v) {
    case "string":
    case "boolean":
      return v;
    case "number":
      return Number.isFinite(v) ? v : String(v);
    case "undefined":
      return undefined;
    case "bigint":
    case "symbol":
    case "function":
      return String(v);
    default:
      if (v === null) return undefined;
      try {
        return JSON.stringify(v) ?? String(v);
      } catch {
        return String(v);
      }
  }
}

function isClean(v: unknown): boolean {
  const t = typeof v;
  return t === "string" || t === "boolean" || (t === "number" && Number.isFinite(v));
}

function keyOf(attributes: Attributes, names: string[]): string {
  let key = "";
  for (const name of names) {
    key += `${JSON.stringify(name)}:${JSON.stringify(attributes[name])},`;
  }
  return key;
}

/**
 * The canonical form of an attribute set and its key: keys sorted,
 * `undefined` and `null` values removed, non-finite numbers and other
 * non-primitive values turned into strings. The reporter (series table) and
 * the master (aggregator, OTLP batcher) all key series by this one function,
 * so a set names the same series at both ends. A set already canonical (most
 * of them: the reporter writes them so) is returned as it is, not copied.
 *
 * @example Key order does not matter, value types do
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalAttributes } from "./attributes.ts";
 * assert.equal(canonicalAttributes({ b: 1, a: "x" }).key, canonicalAttributes({ a: "x", b: 1 }).key);
 * assert.notEqual(canonicalAttributes({ a: 1 }).key, canonicalAttributes({ a: "1" }).key);
 * assert.deepEqual(canonicalAttributes({ a: 1, b: undefined, c: NaN }).attributes, { a: 1, c: "NaN" });
 * ```
 */
export function canonicalAttributes(
  attributes: Readonly<Record<string, unknown>> | undefined | null,
): CanonicalAttributes {
  if (attributes === undefined || attributes === null) return { attributes: {}, key: "" };
  const names = Object.keys(attributes);
  let clean = true;
  for (let i = 0; i < names.length && clean; i++) {
    clean = isClean(attributes[names[i]]) && (i === 0 || names[i - 1] < names[i]);
  }
  if (clean) {
    return { attributes: attributes as Attributes, key: keyOf(attributes as Attributes, names) };
  }
  const out: Attributes = {};
  const kept: string[] = [];
  // Sorted here, not by Object.keys(out): an object lists integer-like names first.
  for (const name of names.sort()) {
    const v = cleanValue(attributes[name]);
    if (v === undefined) continue;
    kept.push(name);
    setAttribute(out, name, v);
  }
  return { attributes: out, key: keyOf(out, kept) };
}

/**
 * Sets attribute `name` of `out`, a `__proto__` attribute included: an
 * assignment to `__proto__` would be lost (or change the prototype).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { setAttribute } from "./attributes.ts";
 * const out = {};
 * setAttribute(out, "__proto__", "x");
 * assert.deepEqual(Object.keys(out), ["__proto__"]);
 * ```
 */
export function setAttribute(out: Attributes, name: string, value: AttributeValue): void {
  if (name === "__proto__") {
    Object.defineProperty(out, name, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else out[name] = value;
}
