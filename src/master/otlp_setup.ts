/**
 * Builds the master's OTLP exporter from the settings: where to send, how,
 * and the resource that names this service and host.
 *
 * @module
 */
import { hostname } from "node:os";
import process from "node:process";
import type { Logger } from "@logtape/logtape";
import type { Attributes, MetricDelta } from "../protocol/messages.ts";
import { OtlpBatcher, type TemporalityPreference } from "../export/otlp_batch.ts";
import { OtlpExporter, type OtlpProtocol } from "../export/otlp_exporter.ts";
import { signalUrl } from "../protocol/otlp.ts";
import { VERSION } from "../protocol/version.ts";

/**
 * The metrics URL the settings name: `otlp_metrics_endpoint` as given, else
 * `otlp_endpoint` with `/v1/metrics` added to its path (a query stays a
 * query); `undefined` when export is off.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { metricsUrl } from "./otlp_setup.ts";
 * assert.ok(metricsUrl({ otlp_endpoint: "http://c:4318" }) === "http://c:4318/v1/metrics");
 * ```
 */
export function metricsUrl(values: Readonly<Record<string, unknown>>): string | undefined {
  const full = values.otlp_metrics_endpoint as string | null | undefined;
  if (full) return full;
  const base = values.otlp_endpoint as string | null | undefined;
  return base ? signalUrl(base, "/v1/metrics") : undefined;
}

/**
 * The `service.name` of every export, welcome and `/status`: `service_name`
 * (or `OTEL_SERVICE_NAME`), else `service.name` from `resource_attributes`,
 * else the program's name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serviceNameOf } from "./otlp_setup.ts";
 * assert.ok(serviceNameOf({ resource_attributes: { "service.name": "api" } }, "server") === "api");
 * ```
 */
export function serviceNameOf(values: Readonly<Record<string, unknown>>, program: string): string {
  const attrs = values.resource_attributes as Record<string, string> | null | undefined;
  return (values.service_name as string | null | undefined) ?? attrs?.["service.name"] ?? program;
}

/** What {@linkcode otlpExporter} needs beside the settings. */
export interface OtlpSetupOptions {
  serviceName: string;
  log: Logger;
  /** The state to export: the master's own metrics and the aggregate. */
  collect: () => MetricDelta[];
  /** The workers' runtime (`deno/2.9.6`), once one has said hello. */
  workerRuntime: () => string | undefined;
  /** Unix ms when the master started. */
  startMs: number;
}

/**
 * The exporter the settings ask for, or `undefined` when no endpoint is set.
 *
 * @example
 * ```ts ignore
 * import { otlpExporter } from "./otlp_setup.ts";
 * otlpExporter(settings.values, { serviceName, log, collect, workerRuntime, startMs })?.start();
 * ```
 */
export function otlpExporter(
  values: Readonly<Record<string, unknown>>,
  options: OtlpSetupOptions,
): OtlpExporter | undefined {
  const url = metricsUrl(values);
  if (url === undefined) return undefined;
  const base: Attributes = {
    ...(values.resource_attributes as Record<string, string> | null ?? {}),
    "service.name": options.serviceName,
    "service.instance.id": crypto.randomUUID(),
    "host.name": hostname(),
    "process.pid": process.pid,
  };
  // Built once the workers' runtime is known and kept: the final export, sent
  // when no worker is left to ask, must name the same service as the others.
  let known: string | undefined;
  let resource: Attributes = base;
  const current = (): Attributes => {
    const runtime = options.workerRuntime() ?? known;
    if (runtime === known) return resource;
    known = runtime!;
    const [name, version] = known.split("/");
    resource = { ...base, "process.runtime.name": name, "process.runtime.version": version ?? "" };
    return resource;
  };
  return new OtlpExporter({
    url,
    protocol: values.otlp_protocol as OtlpProtocol,
    gzip: values.otlp_compression === "gzip",
    headers: (values.otlp_headers as Record<string, string> | null) ?? {},
    timeoutMs: (values.otlp_timeout as number) * 1000,
    intervalMs: (values.export_interval as number) * 1000,
    batcher: new OtlpBatcher({
      temporality: values.otlp_temporality as TemporalityPreference,
      startMs: options.startMs,
      resource: current,
      scope: { name: "forklift", version: VERSION },
    }),
    collect: options.collect,
    log: options.log,
  });
}
