/**
 * Attribute conventions both ends of the protocol share: the overflow marker
 * and the canonical key of an attribute set.
 *
 * @module
 */
import type { Attributes } from "./messages.ts";

/** The attribute that marks the one series holding points beyond the cardinality limit. */
export const OVERFLOW_ATTRIBUTE = "otel.metric.overflow";

/** Most series one instrument keeps before new ones go to the overflow series. */
export const CARDINALITY_LIMIT = 2000;

/**
 * The canonical key of an attribute set: the same string for sets that differ
 * only in key order, different strings for `"1"` and `1`.
 *
 * @example Key order does not matter
 * ```ts
 * import assert from "node:assert/strict";
 * import { attributesKey } from "./attributes.ts";
 * assert.ok(attributesKey({ a: 1, b: "x" }) === attributesKey({ b: "x", a: 1 }));
 * ```
 */
export function attributesKey(attributes: Attributes): string {
  let names = Object.keys(attributes);
  // Sets usually arrive in key order already (the reporter writes them so): sort only when not.
  for (let i = 1; i < names.length; i++) {
    if (names[i - 1] > names[i]) {
      names = names.sort();
      break;
    }
  }
  let key = "";
  for (const name of names) {
    key += `${JSON.stringify(name)}:${JSON.stringify(attributes[name])},`;
  }
  return key;
}
