/**
 * The values computed from the settings, each said once: where metrics go,
 * how they are sent, the service's name, the worker count, the heartbeat and
 * the resource every export carries. `forklift run`, `forklift check
 * --connect` and the standalone reporter all read them here, so they cannot
 * drift apart. Pure and small: the standalone reporter ships it in every worker.
 *
 * @module
 */
import type { Attributes } from "../protocol/messages.ts";
import { signalUrl } from "../protocol/otlp.ts";
import type { Config } from "./config.ts";

/**
 * The metrics URL the settings name: `otlp_metrics_endpoint` as given, else
 * `otlp_endpoint` with `/v1/metrics` added to its path (a query stays a
 * query); `undefined` when export is off.
 *
 * @example From the base endpoint
 * ```ts
 * import assert from "node:assert/strict";
 * import { metricsUrl } from "./derived.ts";
 * assert.equal(
 *   metricsUrl({ otlpEndpoint: "http://c:4318", otlpMetricsEndpoint: null }),
 *   "http://c:4318/v1/metrics",
 * );
 * assert.equal(metricsUrl({ otlpEndpoint: null, otlpMetricsEndpoint: null }), undefined);
 * ```
 */
export function metricsUrl(
  config: Pick<Config, "otlpEndpoint" | "otlpMetricsEndpoint">,
): string | undefined {
  if (config.otlpMetricsEndpoint) return config.otlpMetricsEndpoint;
  return config.otlpEndpoint ? signalUrl(config.otlpEndpoint, "/v1/metrics") : undefined;
}

/**
 * The `service.name` of every export and `/status`: `service_name` (or
 * `OTEL_SERVICE_NAME`), else `service.name` from `resource_attributes`, else
 * the program's name.
 *
 * @example Fallbacks in order
 * ```ts
 * import assert from "node:assert/strict";
 * import { serviceNameOf } from "./derived.ts";
 * const attrs = { "service.name": "api" };
 * assert.equal(serviceNameOf({ serviceName: null, resourceAttributes: attrs }, "server"), "api");
 * assert.equal(serviceNameOf({ serviceName: null, resourceAttributes: null }, "server"), "server");
 * ```
 */
export function serviceNameOf(
  config: Pick<Config, "serviceName" | "resourceAttributes">,
  program: string,
): string {
  return config.serviceName ?? config.resourceAttributes?.["service.name"] ?? program;
}

/**
 * How many workers the master keeps: `workers`, or 1 under `once`.
 *
 * @example One worker under once
 * ```ts
 * import assert from "node:assert/strict";
 * import { workerCount } from "./derived.ts";
 * assert.equal(workerCount({ workers: 4, once: false }), 4);
 * assert.equal(workerCount({ workers: 4, once: true }), 1);
 * ```
 */
export function workerCount(config: Pick<Config, "workers" | "once">): number {
  return config.once ? 1 : config.workers;
}

/**
 * How often a worker says it is alive, in ms (0 when `timeout` is 0): often
 * enough that one late beat never trips the timeout, never more often than
 * every 50 ms, never less often than it harvests.
 *
 * @example A quarter of the timeout, within bounds
 * ```ts
 * import assert from "node:assert/strict";
 * import { heartbeatMs } from "./derived.ts";
 * assert.equal(heartbeatMs({ timeoutMs: 30_000, harvestIntervalMs: 5_000 }), 5_000);
 * assert.equal(heartbeatMs({ timeoutMs: 2_000, harvestIntervalMs: 5_000 }), 500);
 * assert.equal(heartbeatMs({ timeoutMs: 0, harvestIntervalMs: 5_000 }), 0);
 * ```
 */
export function heartbeatMs(config: Pick<Config, "timeoutMs" | "harvestIntervalMs">): number {
  if (config.timeoutMs <= 0) return 0;
  return Math.max(50, Math.min(config.harvestIntervalMs, Math.round(config.timeoutMs / 4)));
}

/** How an OTLP export is sent: what {@linkcode otlpOptions} computes. */
export interface OtlpOptions {
  url: string;
  protocol: Config["otlpProtocol"];
  gzip: boolean;
  headers: Record<string, string>;
  timeoutMs: number;
  intervalMs: number;
}

/**
 * Where and how OTLP exports go, or `undefined` when export is off.
 *
 * @example Options from the settings
 * ```ts
 * import assert from "node:assert/strict";
 * import { otlpOptions } from "./derived.ts";
 * import { typedConfig } from "./config.ts";
 * const o = otlpOptions(typedConfig({ otlp_endpoint: "http://c:4318", otlp_compression: "gzip" }));
 * assert.equal(o?.url, "http://c:4318/v1/metrics");
 * assert.equal(o?.gzip, true);
 * assert.equal(o?.timeoutMs, 10_000);
 * assert.equal(otlpOptions(typedConfig({})), undefined);
 * ```
 */
export function otlpOptions(
  config: Pick<
    Config,
    | "otlpEndpoint"
    | "otlpMetricsEndpoint"
    | "otlpProtocol"
    | "otlpCompression"
    | "otlpHeaders"
    | "otlpTimeoutMs"
    | "exportIntervalMs"
  >,
): OtlpOptions | undefined {
  const url = metricsUrl(config);
  if (url === undefined) return undefined;
  return {
    url,
    protocol: config.otlpProtocol,
    gzip: config.otlpCompression === "gzip",
    headers: { ...config.otlpHeaders },
    timeoutMs: config.otlpTimeoutMs,
    intervalMs: config.exportIntervalMs,
  };
}

/** What the resource says beside the settings. */
export interface ResourceFacts {
  /** From {@linkcode serviceNameOf}. */
  serviceName: string;
  /** New for each exporting process (a master, or a program without one). */
  instanceId: string;
  /** The host's name, where the process can read it. */
  hostName?: string;
  /** The exporting process. */
  pid: number;
  /** The workers' runtime, `deno/2.9.6`, once known. */
  runtime?: string;
}

/**
 * The resource of every export: `resource_attributes`, then `service.name`,
 * `service.instance.id`, `host.name`, `process.pid` and, once known, the
 * runtime's name and version (these win over `resource_attributes`).
 *
 * @example The full resource
 * ```ts
 * import assert from "node:assert/strict";
 * import { resourceOf } from "./derived.ts";
 * const r = resourceOf({ resourceAttributes: { team: "web" } }, {
 *   serviceName: "api",
 *   instanceId: "i-1",
 *   hostName: "h",
 *   pid: 7,
 *   runtime: "deno/2.9.6",
 * });
 * assert.deepEqual(r, {
 *   team: "web",
 *   "service.name": "api",
 *   "service.instance.id": "i-1",
 *   "host.name": "h",
 *   "process.pid": 7,
 *   "process.runtime.name": "deno",
 *   "process.runtime.version": "2.9.6",
 * });
 * ```
 */
export function resourceOf(
  config: Pick<Config, "resourceAttributes">,
  facts: ResourceFacts,
): Attributes {
  const resource: Attributes = {
    ...config.resourceAttributes,
    "service.name": facts.serviceName,
    "service.instance.id": facts.instanceId,
  };
  if (facts.hostName !== undefined) resource["host.name"] = facts.hostName;
  resource["process.pid"] = facts.pid;
  if (facts.runtime !== undefined) {
    const [name, version] = facts.runtime.split("/");
    resource["process.runtime.name"] = name;
    resource["process.runtime.version"] = version ?? "";
  }
  return resource;
}
