/**
 * What an instrument may declare (name, kind, unit, description, histogram
 * boundaries) and the one check of it: the reporter's instruments, the
 * harvest validator and the master's aggregator all call
 * {@linkcode checkDeclaration}, so each refuses what the others refuse.
 *
 * @module
 */
import type { InstrumentKind } from "./messages.ts";

/** The longest instrument name, in characters. */
export const MAX_NAME = 255;

/** The longest unit an instrument may have, in characters: OpenTelemetry's limit. */
export const MAX_UNIT = 63;

/** The longest description an instrument may have, in characters: OpenTelemetry's limit. */
export const MAX_DESCRIPTION = 1023;

/**
 * Most bucket boundaries a histogram may have. OpenTelemetry's default has 15
 * and its exponential histograms 160 buckets; every boundary is one more
 * `_bucket` line per series on each scrape.
 */
export const MAX_BOUNDARIES = 200;

const KINDS = new Set<string>(["counter", "updown", "gauge", "histogram"]);

/** An instrument's declaration as it arrives, not yet checked. */
export interface Declaration {
  name?: unknown;
  kind?: unknown;
  unit?: unknown;
  description?: unknown;
  boundaries?: unknown;
}

/** Why a declaration is refused: the field, the error class it calls for, and what is wrong. */
export interface DeclarationProblem {
  field: "name" | "kind" | "unit" | "description" | "boundaries";
  /** `type` for a wrong type or shape, `range` for a value out of range. */
  error: "type" | "range";
  message: string;
}

function problem(
  field: DeclarationProblem["field"],
  error: DeclarationProblem["error"],
  message: string,
): DeclarationProblem {
  return { field, error, message };
}

function checkText(
  field: "unit" | "description",
  text: unknown,
  max: number,
): DeclarationProblem | undefined {
  if (text === undefined) return undefined;
  if (typeof text !== "string") return problem(field, "type", `${field} must be a string`);
  if (text.length > max) {
    return problem(
      field,
      "range",
      `${field} must be at most ${max} characters, got ${text.length}`,
    );
  }
  return undefined;
}

/**
 * Why `d` is no sound instrument declaration, or undefined when it is. The
 * boundaries are checked for histograms only: finite, strictly ascending, at
 * most {@linkcode MAX_BOUNDARIES}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkDeclaration } from "./declaration.ts";
 * assert.equal(checkDeclaration({ name: "app.hits", kind: "counter", unit: "{hit}" }), undefined);
 * assert.deepEqual(checkDeclaration({ name: "h", kind: "histogram", boundaries: [1, 1] }), {
 *   field: "boundaries",
 *   error: "range",
 *   message: "boundaries must be strictly ascending, got 1 after 1",
 * });
 * ```
 */
export function checkDeclaration(d: Declaration): DeclarationProblem | undefined {
  const { name, kind } = d;
  if (typeof name !== "string" || name === "" || name.length > MAX_NAME) {
    return problem("name", "type", `expected a name of 1 to ${MAX_NAME} characters`);
  }
  if (typeof kind !== "string" || !KINDS.has(kind)) {
    return problem("kind", "type", `unknown kind ${JSON.stringify(kind)}`);
  }
  const bad = checkText("unit", d.unit, MAX_UNIT) ??
    checkText("description", d.description, MAX_DESCRIPTION);
  if (bad !== undefined || (kind as InstrumentKind) !== "histogram") return bad;
  const b = d.boundaries;
  if (!Array.isArray(b)) return problem("boundaries", "type", "boundaries must be an array");
  if (b.length > MAX_BOUNDARIES) {
    return problem("boundaries", "range", `at most ${MAX_BOUNDARIES} boundaries, got ${b.length}`);
  }
  for (let i = 0; i < b.length; i++) {
    if (typeof b[i] !== "number" || !Number.isFinite(b[i])) {
      return problem("boundaries", "type", "boundaries must be finite numbers");
    }
    if (i > 0 && b[i] <= b[i - 1]) {
      return problem(
        "boundaries",
        "range",
        `boundaries must be strictly ascending, got ${b[i]} after ${b[i - 1]}`,
      );
    }
  }
  return undefined;
}
