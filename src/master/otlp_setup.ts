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
import type { Config } from "../config/config.ts";
import { OtlpBatcher } from "../export/otlp_batch.ts";
import { OtlpExporter } from "../export/otlp_exporter.ts";
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
 * import { typedConfig } from "../config/config.ts";
 * const config = typedConfig({ otlp_endpoint: "http://c:4318" });
 * assert.ok(metricsUrl(config) === "http://c:4318/v1/metrics");
 * ```
 */
export function metricsUrl(
  config: Pick<Config, "otlpEndpoint" | "otlpMetricsEndpoint">,
): string | undefined {
  if (config.otlpMetricsEndpoint) return config.otlpMetricsEndpoint;
  return config.otlpEndpoint ? signalUrl(config.otlpEndpoint, "/v1/metrics") : undefined;
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
 * import { typedConfig } from "../config/config.ts";
 * const config = typedConfig({ resource_attributes: { "service.name": "api" } });
 * assert.ok(serviceNameOf(config, "server") === "api");
 * ```
 */
export function serviceNameOf(
  config: Pick<Config, "serviceName" | "resourceAttributes">,
  program: string,
): string {
  return config.serviceName ?? config.resourceAttributes?.["service.name"] ?? program;
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
 * otlpExporter(settings.config, { serviceName, log, collect, workerRuntime, startMs })?.start();
 * ```
 */
export function otlpExporter(
  config: Config,
  options: OtlpSetupOptions,
): OtlpExporter | undefined {
  const url = metricsUrl(config);
  if (url === undefined) return undefined;
  const base: Attributes = {
    ...config.resourceAttributes,
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
    protocol: config.otlpProtocol,
    gzip: config.otlpCompression === "gzip",
    headers: { ...config.otlpHeaders },
    timeoutMs: config.otlpTimeoutMs,
    intervalMs: config.exportIntervalMs,
    batcher: new OtlpBatcher({
      temporality: config.otlpTemporality,
      startMs: options.startMs,
      resource: current,
      scope: { name: "forklift", version: VERSION },
    }),
    collect: options.collect,
    log: options.log,
  });
}
