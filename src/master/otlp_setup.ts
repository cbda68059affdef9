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
import { otlpOptions, resourceOf } from "../config/derived.ts";
import { OtlpBatcher } from "../export/otlp_batch.ts";
import { OtlpExporter } from "../export/otlp_exporter.ts";
import { VERSION } from "../protocol/version.ts";

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
  const send = otlpOptions(config);
  if (send === undefined) return undefined;
  const facts = {
    serviceName: options.serviceName,
    instanceId: crypto.randomUUID(),
    hostName: hostname(),
    pid: process.pid,
  };
  // Built once the workers' runtime is known and kept: the final export, sent
  // when no worker is left to ask, must name the same service as the others.
  let known: string | undefined;
  let resource: Attributes = resourceOf(config, facts);
  const current = (): Attributes => {
    const runtime = options.workerRuntime() ?? known;
    if (runtime === known) return resource;
    known = runtime;
    resource = resourceOf(config, { ...facts, runtime });
    return resource;
  };
  return new OtlpExporter({
    ...send,
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
