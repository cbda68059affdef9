/**
 * The typed view of the settings: one field per setting of the registry,
 * named in camelCase, with every duration in milliseconds (`timeoutMs`). The
 * type is computed from {@linkcode SETTINGS}, so a setting added there appears
 * here with its type, and nothing outside `src/config/` casts a value.
 *
 * @module
 */
import { type SettingEntry as Entry, SETTINGS, type SettingValue } from "./settings.ts";

type Camel<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<Camel<T>>}`
  : S;

/** A setting's field name: camelCase, `Ms` after a duration. */
type FieldName<E extends Entry> = E["type"] extends "seconds" ? `${Camel<E["name"]>}Ms`
  : Camel<E["name"]>;

/** A setting's field type: `null` where the setting may be unset or `off`. */
type FieldType<E extends Entry> = E extends { readonly choices: readonly (infer C)[] } ? C
  : E["type"] extends "integer" | "seconds" | "size" ? number
  : E["type"] extends "boolean" ? boolean
  : E["type"] extends "headers" ? Readonly<Record<string, string>> | null
  : string | null;

/** The effective settings, typed. */
export type Config = { readonly [E in Entry as FieldName<E>]: FieldType<E> };

/**
 * The field of {@linkcode Config} a setting fills.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fieldName } from "./config.ts";
 * assert.equal(fieldName("graceful_timeout", "seconds"), "gracefulTimeoutMs");
 * assert.equal(fieldName("otlp_endpoint", "url"), "otlpEndpoint");
 * ```
 */
export function fieldName(name: string, type: string): string {
  const camel = name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  return type === "seconds" ? `${camel}Ms` : camel;
}

/**
 * Builds the typed view from values by setting name (as the loader resolves
 * them); a setting missing from `values` takes its default.
 *
 * @example Durations become milliseconds
 * ```ts
 * import assert from "node:assert/strict";
 * import { typedConfig } from "./config.ts";
 * const config = typedConfig({ workers: 4, graceful_timeout: 2.5 });
 * assert.equal(config.workers, 4);
 * assert.equal(config.gracefulTimeoutMs, 2500);
 * assert.equal(config.otlpEndpoint, null);
 * ```
 */
export function typedConfig(values: Readonly<Record<string, SettingValue>>): Config {
  const out: Record<string, SettingValue> = {};
  for (const s of SETTINGS) {
    const v = Object.hasOwn(values, s.name) ? values[s.name] : s.default;
    // Rounded to whole ms: a timer takes no finer value.
    out[fieldName(s.name, s.type)] = s.type === "seconds" ? Math.round(Number(v) * 1000) : v;
  }
  return Object.freeze(out) as unknown as Config;
}
