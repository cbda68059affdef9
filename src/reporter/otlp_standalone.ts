/**
 * The standalone reporter's OTLP export: a program that imports forklift's
 * API and runs without a master sends its cuts straight to
 * `OTEL_EXPORTER_OTLP_ENDPOINT` as OTLP/JSON deltas. A failed export keeps
 * its data for the next one (merged, so memory stays the series'). No npm
 * dependency, nothing read before the first recording.
 *
 * @module
 */
import { deltaBatch, otlpJson, parseKeyValues } from "../protocol/otlp.ts";
import { metricsUrl, resourceOf, serviceNameOf } from "../config/derived.ts";
import { VERSION } from "../protocol/version.ts";
import { parseOtelMs } from "../config/durations.ts";
import { type Cut, mergeCuts } from "./storage.ts";

/** What the standalone export needs of its process. */
export interface StandaloneHost {
  pid: number;
  /** `"deno/2.9.6"`, … */
  runtime: string;
  env(name: string): string | undefined;
}

/** The export the environment asks for. */
export interface StandaloneOtlp {
  /** Exports a cut (or keeps it for later while one is in flight). */
  export(cut: Cut): void;
  /** The interval `OTEL_METRIC_EXPORT_INTERVAL` asks for, in ms. */
  intervalMs: number;
}

function keyValues(raw: string | undefined): Record<string, string> {
  try {
    return raw ? parseKeyValues(raw) : {};
  } catch {
    return {};
  }
}

/**
 * The standalone OTLP export configured by `OTEL_*` variables, or
 * `undefined` when no endpoint is set.
 *
 * @example
 * ```ts ignore
 * import { standaloneOtlp } from "./otlp_standalone.ts";
 * const otlp = standaloneOtlp({ pid: 1, runtime: "deno/2.9.6", env: (n) => Deno.env.get(n) });
 * otlp?.export(storage.cut());
 * ```
 */
export function standaloneOtlp(host: StandaloneHost): StandaloneOtlp | undefined {
  const env = (name: string) => host.env(name)?.trim() || undefined;
  const url = metricsUrl({
    otlpEndpoint: env("OTEL_EXPORTER_OTLP_ENDPOINT")?.replace(/\/+$/, "") ?? null,
    otlpMetricsEndpoint: env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") ?? null,
  });
  if (url === undefined) return undefined;
  const headers = {
    ...keyValues(env("OTEL_EXPORTER_OTLP_HEADERS")),
    ...keyValues(env("OTEL_EXPORTER_OTLP_METRICS_HEADERS")),
    "content-type": "application/json",
  };
  // Read as the settings read them; a value they refuse is no value here either.
  const ms = (names: string[], fallback: number) => {
    for (const name of names) {
      const raw = env(name);
      if (raw === undefined) continue;
      try {
        return parseOtelMs(raw);
      } catch {
        // Recording never throws into the host: the default stands.
      }
    }
    return fallback;
  };
  const timeoutMs = ms(
    ["OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"],
    10_000,
  );
  const config = {
    serviceName: env("OTEL_SERVICE_NAME") ?? null,
    resourceAttributes: keyValues(env("OTEL_RESOURCE_ATTRIBUTES")),
  };
  // A program on its own has no name to fall back to: OpenTelemetry's default.
  const resource = resourceOf(config, {
    serviceName: serviceNameOf(config, "unknown_service"),
    instanceId: crypto.randomUUID(),
    pid: host.pid,
    runtime: host.runtime,
  });
  let pending: Cut | undefined;
  let inflight = false;
  let lastMs = Date.now();

  const send = () => {
    const cut = pending!;
    pending = undefined;
    inflight = true;
    const nowMs = Date.now();
    const batch = deltaBatch(cut.metrics, {
      startMs: lastMs,
      nowMs,
      resource,
      scope: { name: "forklift", version: VERSION },
    });
    fetch(url, {
      method: "POST",
      headers,
      body: JSON.stringify(otlpJson(batch)),
      signal: AbortSignal.timeout(timeoutMs),
      // Following would send the headers, API key and all, wherever the answer points.
      redirect: "manual",
    }).then(async (res) => {
      await res.body?.cancel();
      // A refusal other than these will not change on retry: drop it.
      if (!res.ok && [429, 502, 503, 504].includes(res.status)) throw new Error(`${res.status}`);
      lastMs = nowMs;
    }).catch(() => {
      pending = pending === undefined ? cut : mergeCuts(cut, pending);
    }).finally(() => {
      inflight = false;
    });
  };

  return {
    intervalMs: ms(["OTEL_METRIC_EXPORT_INTERVAL"], 60_000),
    export(cut) {
      if (cut.metrics.length > 0) pending = pending === undefined ? cut : mergeCuts(pending, cut);
      if (!inflight && pending !== undefined) send();
    },
  };
}

/** Interval of the standalone timer when nothing else says (OpenTelemetry's default). */
export const STANDALONE_INTERVAL_MS = 60_000;

/** Standalone seam: receives every cut when no forklift master exists. */
export type StandaloneExporter = (cut: Cut) => void;

/**
 * How a standalone reporter exports, decided on its first recording (so
 * importing the API costs nothing): through `given` when set, else to OTLP
 * when the environment asks for it (with a last export, `finalTick`, before
 * a normal exit), else nowhere; and the period of its timer.
 *
 * @example No endpoint, no exporter: the reporter only counts
 * ```ts
 * import assert from "node:assert/strict";
 * import { STANDALONE_INTERVAL_MS, standaloneExport } from "./otlp_standalone.ts";
 * const host = { pid: 1, runtime: "deno/2.9.6", env: () => undefined };
 * const setup = standaloneExport(host, undefined, () => {});
 * assert.deepEqual(setup, { exporter: undefined, periodMs: STANDALONE_INTERVAL_MS });
 * ```
 */
export function standaloneExport(
  host: StandaloneHost & { beforeExit?(fn: () => void): void },
  given: StandaloneExporter | undefined,
  finalTick: () => void,
): { exporter: StandaloneExporter | undefined; periodMs: number } {
  const otlp = given === undefined ? standaloneOtlp(host) : undefined;
  if (otlp === undefined) return { exporter: given, periodMs: STANDALONE_INTERVAL_MS };
  let sent = false;
  host.beforeExit?.(() => {
    if (sent) return;
    sent = true;
    finalTick();
  });
  return { exporter: (cut) => otlp.export(cut), periodMs: otlp.intervalMs };
}
