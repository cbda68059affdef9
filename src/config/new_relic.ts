/**
 * The New Relic preset, for users of `newrelic-admin run-program`: with
 * `NEW_RELIC_LICENSE_KEY` set and no OTLP endpoint, metrics go to New
 * Relic's OTLP endpoint for the key's region, with the key as the `api-key`
 * header and delta temporality, which New Relic asks for; `NEW_RELIC_APP_NAME`
 * names the service. It fills only what nothing else set.
 *
 * @module
 */
import type { SettingValue } from "./settings.ts";

/** The variable that turns the preset on. */
export const LICENSE_KEY_ENV = "NEW_RELIC_LICENSE_KEY";
/** The variable that names the service. */
export const APP_NAME_ENV = "NEW_RELIC_APP_NAME";

/**
 * New Relic's OTLP endpoint for a license key: EU keys start with their
 * region (`eu01…`), the others are US keys.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { newRelicEndpoint } from "./new_relic.ts";
 * assert.ok(newRelicEndpoint("eu01xx0123456789abcdefNRAL") === "https://otlp.eu01.nr-data.net");
 * assert.ok(newRelicEndpoint("0123456789abcdef0123NRAL") === "https://otlp.nr-data.net");
 * ```
 */
export function newRelicEndpoint(key: string): string {
  const region = /^(eu\d{2})x/i.exec(key.trim())?.[1]?.toLowerCase();
  return region ? `https://otlp.${region}.nr-data.net` : "https://otlp.nr-data.net";
}

/**
 * Applies the preset to resolved values and origins, in place.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyNewRelicPreset } from "./new_relic.ts";
 * const values: Record<string, unknown> = { otlp_endpoint: null, otlp_metrics_endpoint: null, otlp_headers: null, otlp_temporality: "cumulative", service_name: null };
 * const origins: Record<string, string> = { otlp_temporality: "default", service_name: "default", otlp_headers: "default" };
 * applyNewRelicPreset(values as never, origins, { NEW_RELIC_LICENSE_KEY: "k", NEW_RELIC_APP_NAME: "shop;shop-eu" });
 * assert.ok(values.otlp_temporality === "delta" && values.service_name === "shop");
 * ```
 */
export function applyNewRelicPreset(
  values: Record<string, SettingValue>,
  origins: Record<string, string>,
  env: Record<string, string | undefined>,
): void {
  const key = env[LICENSE_KEY_ENV]?.trim();
  if (!key || values.otlp_endpoint !== null || values.otlp_metrics_endpoint !== null) return;
  const from = `env:${LICENSE_KEY_ENV}`;
  values.otlp_endpoint = newRelicEndpoint(key);
  origins.otlp_endpoint = from;
  values.otlp_headers = {
    ...(values.otlp_headers as Record<string, string> | null),
    "api-key": key,
  };
  if (origins.otlp_headers === "default") origins.otlp_headers = from;
  if (origins.otlp_temporality === "default") {
    values.otlp_temporality = "delta";
    origins.otlp_temporality = from;
  }
  // The agent takes several names separated by ";"; the first is the app's own.
  const app = env[APP_NAME_ENV]?.split(";")[0].trim();
  if (app && origins.service_name === "default") {
    values.service_name = app;
    origins.service_name = `env:${APP_NAME_ENV}`;
  }
}
