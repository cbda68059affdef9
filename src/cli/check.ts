/**
 * `forklift check`: validates the configuration (loading it already did) and,
 * with `--connect`, sends one small real OTLP export to prove the collector
 * takes it.
 *
 * @module
 */
import { hostname } from "node:os";
import process from "node:process";
import { ConfigError } from "../config/errors.ts";
import type { Config } from "../config/config.ts";
import { otlpOptions, resourceOf, serviceNameOf, workerCount } from "../config/derived.ts";
import { sendOtlp } from "../export/otlp_exporter.ts";
import { programName } from "../master/command.ts";
import { redactUrl, unixNano } from "../protocol/otlp.ts";
import { VERSION } from "../protocol/version.ts";
import type { CommandContext } from "./context.ts";

/** Exit code for a failed `--connect` export. */
export const EXIT_CONNECT_FAILED = 1;

/**
 * Sends one small real export (a `forklift.check` gauge of 1, with the
 * service's resource) the way `forklift run` would: same URL, encoding,
 * compression, headers, timeout and resource. Resolves to a one-line verdict with the latency.
 *
 * @example Try a collector
 * ```ts ignore
 * import { tryExport } from "./check.ts";
 * const r = await tryExport(settings.config, "api");
 * console.log(r.ok, r.detail);
 * ```
 */
export async function tryExport(
  config: Config,
  serviceName: string,
): Promise<{ ok: boolean; detail: string }> {
  const send = otlpOptions(config);
  if (send === undefined) {
    throw new ConfigError(
      "No otlp_endpoint is set, nothing to connect to (set --otlp-endpoint or OTEL_EXPORTER_OTLP_ENDPOINT)",
    );
  }
  const shown = redactUrl(send.url);
  const now = unixNano(Date.now());
  const t0 = performance.now();
  const { outcome } = await sendOtlp({
    resource: resourceOf(config, {
      serviceName,
      instanceId: crypto.randomUUID(),
      hostName: hostname(),
      pid: process.pid,
    }),
    scope: { name: "forklift", version: VERSION },
    metrics: [{
      name: "forklift.check",
      unit: "1",
      type: "gauge",
      points: [{ attributes: {}, startTimeUnixNano: now, timeUnixNano: now, value: 1 }],
    }],
  }, send);
  const ms = Math.round(performance.now() - t0);
  const how = `${config.otlpProtocol}${config.otlpCompression === "gzip" ? ", gzip" : ""}`;
  if (outcome.kind === "ok") {
    const partial = outcome.partial
      ? `, but it rejected ${outcome.partial.rejectedDataPoints} point(s): ${outcome.partial.errorMessage}`
      : "";
    return { ok: true, detail: `${shown} took the export (${how}) in ${ms} ms${partial}` };
  }
  return { ok: false, detail: `${shown} (${how}) after ${ms} ms: ${outcome.why}` };
}

/**
 * Runs `forklift check`.
 *
 * @example
 * ```ts ignore
 * import { checkCommand } from "./check.ts";
 * const code = await checkCommand(ctx);
 * ```
 */
export async function checkCommand(ctx: CommandContext): Promise<number> {
  const { file, environment, config } = ctx.settings;
  const where = file
    ? `${file}${environment ? ` [forklift:${environment}]` : ""}`
    : "no config file";
  ctx.print(`Configuration OK (${where}; ${workerCount(config)} worker(s))\n`);
  if (!ctx.commandLine.switches.has("connect")) return 0;
  const program = ctx.commandLine.rest;
  // Named as `run` names it; with no program to name it after, forklift names it.
  const fallback = program.length > 0 ? programName(program) : "forklift";
  const r = await tryExport(config, serviceNameOf(config, fallback));
  ctx.print(`${r.ok ? "Export OK" : "Export failed"}: ${r.detail}\n`);
  return r.ok ? 0 : EXIT_CONNECT_FAILED;
}
