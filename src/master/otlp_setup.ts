/**
 * Builds the master's OTLP export from the settings: the batcher that turns
 * the state into batches (and, in delta mode, remembers what was sent), the
 * exporter that sends them, and the resource that names this service and host.
 *
 * @module
 */
import { hostname } from "node:os";
import process from "node:process";
import type { Logger } from "@logtape/logtape";
import type { Attributes, MetricDelta } from "../protocol/messages.ts";
import type { Config } from "../config/config.ts";
import { otlpOptions, resourceOf } from "../config/derived.ts";
import { OtlpBatcher } from "../export/otlp_batch.ts";
import { OtlpExporter } from "../export/otlp_exporter.ts";
import { VERSION } from "../protocol/version.ts";

/**
 * The master's resource: one instance id for the master's life, the settings'
 * attributes and service name as they are now, and the workers' runtime once
 * one has said hello, kept from then on: the final export, sent when no worker
 * is left to ask, must name the same service as the others.
 *
 * @example The runtime is learned late and kept
 * ```ts
 * import assert from "node:assert/strict";
 * import { MasterResource } from "./otlp_setup.ts";
 * import { typedConfig } from "../config/config.ts";
 * let runtime: string | undefined;
 * const r = new MasterResource(() => runtime);
 * r.configure(typedConfig({ resource_attributes: { team: "web" } }), "api");
 * assert.equal(r.current()["service.name"], "api");
 * runtime = "bun/1.4.5";
 * assert.equal(r.current()["process.runtime.name"], "bun");
 * runtime = undefined;
 * assert.equal(r.current()["process.runtime.version"], "1.4.5");
 * r.configure(typedConfig({}), "shop");
 * assert.equal(r.current()["service.name"], "shop");
 * assert.equal(r.current().team, undefined);
 * ```
 */
export class MasterResource {
  readonly #instanceId = crypto.randomUUID();
  /** Read at the first export, not before: a master that exports nothing never asks. */
  #host?: string;
  #workerRuntime: () => string | undefined;
  #config: Pick<Config, "resourceAttributes"> = { resourceAttributes: null };
  #serviceName = "";
  #runtime?: string;
  #resource?: Attributes;

  /** `workerRuntime`: the workers' runtime (`deno/2.9.6`), once one has said hello. */
  constructor(workerRuntime: () => string | undefined) {
    this.#workerRuntime = workerRuntime;
  }

  /** Takes the settings' attributes and service name (at start, and at each reload). */
  configure(config: Pick<Config, "resourceAttributes">, serviceName: string): void {
    this.#config = config;
    this.#serviceName = serviceName;
    this.#resource = undefined;
  }

  /** The resource of the next batch. */
  current(): Attributes {
    const runtime = this.#workerRuntime() ?? this.#runtime;
    if (this.#resource !== undefined && runtime === this.#runtime) return this.#resource;
    this.#runtime = runtime;
    this.#resource = resourceOf(this.#config, {
      serviceName: this.#serviceName,
      instanceId: this.#instanceId,
      hostName: this.#host ??= hostname(),
      pid: process.pid,
      runtime,
    });
    return this.#resource;
  }
}

/**
 * The batcher for the settings' temporality; every series of a cumulative
 * export starts at `startMs`.
 *
 * @example An empty state builds an empty batch
 * ```ts
 * import assert from "node:assert/strict";
 * import { otlpBatcher } from "./otlp_setup.ts";
 * const b = otlpBatcher("delta", { startMs: 0, resource: () => ({ "service.name": "api" }) });
 * assert.equal(b.build([], 1000).points, 0);
 * ```
 */
export function otlpBatcher(
  temporality: Config["otlpTemporality"],
  options: { startMs: number; resource: () => Attributes },
): OtlpBatcher {
  return new OtlpBatcher({
    temporality,
    startMs: options.startMs,
    resource: options.resource,
    scope: { name: "forklift", version: VERSION },
  });
}

/** What {@linkcode otlpExporter} needs beside the settings. */
export interface OtlpSetupOptions {
  /** Builds the batches (kept across exporters, so a delta is sent once). */
  batcher: OtlpBatcher;
  log: Logger;
  /** The state to export: the master's own metrics and the aggregate. */
  collect: () => MetricDelta[];
}

/**
 * The exporter the settings ask for, or `undefined` when no endpoint is set.
 *
 * @example No endpoint, no exporter
 * ```ts
 * import assert from "node:assert/strict";
 * import { otlpBatcher, otlpExporter } from "./otlp_setup.ts";
 * import { typedConfig } from "../config/config.ts";
 * import { logger } from "../log/logging.ts";
 * const batcher = otlpBatcher("cumulative", { startMs: 0, resource: () => ({}) });
 * const options = { batcher, log: logger("doc"), collect: () => [] };
 * assert.equal(otlpExporter(typedConfig({}), options), undefined);
 * assert.ok(otlpExporter(typedConfig({ otlp_endpoint: "http://c:4318" }), options));
 * ```
 */
export function otlpExporter(
  config: Config,
  options: OtlpSetupOptions,
): OtlpExporter | undefined {
  const send = otlpOptions(config);
  if (send === undefined) return undefined;
  return new OtlpExporter({
    ...send,
    batcher: options.batcher,
    collect: options.collect,
    log: options.log,
  });
}
