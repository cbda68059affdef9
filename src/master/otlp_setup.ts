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
import { OtlpExporter, type OtlpExportStats } from "../export/otlp_exporter.ts";
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

/** What an OTLP exporter is built from: a change means a new exporter. */
function exportKey(config: Config): string {
  return JSON.stringify([otlpOptions(config) ?? null, config.otlpTemporality]);
}

function addStats(a: OtlpExportStats | undefined, b: OtlpExportStats): OtlpExportStats {
  return {
    exports: (a?.exports ?? 0) + b.exports,
    failures: (a?.failures ?? 0) + b.failures,
    retries: (a?.retries ?? 0) + b.retries,
    dropped: (a?.dropped ?? 0) + b.dropped,
    bytes: (a?.bytes ?? 0) + b.bytes,
  };
}

/** What {@linkcode MasterExport} needs beside the settings. */
export interface MasterExportOptions {
  serviceName: string;
  log: Logger;
  /** The state to export: the master's own metrics and the aggregate. */
  collect: () => MetricDelta[];
  /** The workers' runtime (`deno/2.9.6`), once one has said hello. */
  workerRuntime: () => string | undefined;
  /** Unix ms when the master started: the start of every cumulative series. */
  startMs: number;
}

/**
 * The master's OTLP export over its whole life: the exporter the settings
 * ask for, replaced when a reload changes where or how it sends (after a
 * last export from the old one, with the same batcher, so a delta is sent
 * once), with counters that add up every exporter's.
 *
 * @example No endpoint: nothing to send, nothing counted
 * ```ts
 * import assert from "node:assert/strict";
 * import { MasterExport } from "./otlp_setup.ts";
 * import { typedConfig } from "../config/config.ts";
 * import { logger } from "../log/logging.ts";
 * const e = new MasterExport(typedConfig({}), {
 *   serviceName: "api",
 *   log: logger("doc"),
 *   collect: () => [],
 *   workerRuntime: () => undefined,
 *   startMs: 0,
 * });
 * e.start();
 * assert.equal(e.stats, undefined);
 * await e.close(100);
 * ```
 */
export class MasterExport {
  #o: MasterExportOptions;
  #config: Config;
  #resource: MasterResource;
  /** Kept across exporters of one temporality: what a delta export sent is not sent again. */
  #batcher: OtlpBatcher;
  #exporter?: OtlpExporter;
  /** The OTLP options the exporter was built from, to rebuild it only when they change. */
  #key: string;
  /** What the exporters a reload replaced counted: the counters never go back. */
  #before?: OtlpExportStats;
  /** An exporter being replaced: its last export, then the new one. */
  #swap: Promise<void> = Promise.resolve();
  #started = false;
  #closed = false;

  constructor(config: Config, options: MasterExportOptions) {
    this.#o = options;
    this.#config = config;
    this.#resource = new MasterResource(options.workerRuntime);
    this.#resource.configure(config, options.serviceName);
    this.#batcher = this.#newBatcher(config);
    this.#exporter = this.#newExporter(config);
    this.#key = exportKey(config);
  }

  #newBatcher(config: Config): OtlpBatcher {
    return otlpBatcher(config.otlpTemporality, {
      startMs: this.#o.startMs,
      resource: () => this.#resource.current(),
    });
  }

  #newExporter(config: Config): OtlpExporter | undefined {
    return otlpExporter(config, {
      batcher: this.#batcher,
      log: this.#o.log,
      collect: this.#o.collect,
    });
  }

  /** The OTLP counters over every exporter the master had; undefined while it never had one. */
  get stats(): OtlpExportStats | undefined {
    const now = this.#exporter?.stats;
    return now === undefined ? this.#before : addStats(this.#before, now);
  }

  /** Exports every interval from now on. */
  start(): void {
    this.#started = true;
    this.#exporter?.start();
  }

  /**
   * Takes reloaded settings: the resource at once; a new exporter, when the
   * OTLP options changed, in the background: the old one's last export may
   * take its whole timeout, and the master's loop must not wait for a collector.
   */
  reconfigure(config: Config, serviceName: string): void {
    const before = this.#config;
    this.#config = config;
    this.#resource.configure(config, serviceName);
    const key = exportKey(config);
    if (key === this.#key) return;
    this.#key = key;
    this.#swap = this.#swap.then(() => this.#replace(before, config));
  }

  /** A last export from the old exporter, then the new one takes over where it left off. */
  async #replace(before: Config, config: Config): Promise<void> {
    const old = this.#exporter;
    if (old !== undefined) {
      await old.shutdown(before.otlpTimeoutMs);
      this.#before = addStats(this.#before, old.stats);
    }
    if (config.otlpTemporality !== before.otlpTemporality) {
      // Another temporality is another stream: it starts from the master's start.
      this.#batcher = this.#newBatcher(config);
    }
    this.#exporter = this.#newExporter(config);
    if (this.#started && !this.#closed) this.#exporter?.start();
  }

  /** Sends a last export within `finalWithinMs`, a reload's replacement included. */
  async close(finalWithinMs: number): Promise<void> {
    this.#closed = true;
    // A reload's last export may still be out: it takes from the same time,
    // and the stop stays within finalWithinMs whatever that collector does.
    const start = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#swap,
      new Promise<void>((resolve) => (timer = setTimeout(resolve, finalWithinMs))),
    ]);
    clearTimeout(timer);
    const left = Math.max(0, finalWithinMs - (performance.now() - start));
    await this.#exporter?.shutdown(left);
  }
}
