/**
 * `forklift check`: validates the configuration (loading it already did) and,
 * with `--connect`, sends one empty OTLP export to prove the collector answers.
 *
 * @module
 */
import { ConfigError } from "../config/errors.ts";
import type { CommandContext } from "./context.ts";

/** Exit code for a failed `--connect` export. */
export const EXIT_CONNECT_FAILED = 1;

/**
 * Sends one empty OTLP/HTTP JSON export; resolves to a one-line verdict.
 *
 * @example Try a collector
 * ```ts ignore
 * import { tryExport } from "./check.ts";
 * const r = await tryExport("http://127.0.0.1:4318", {}, 5000);
 * console.log(r.ok, r.detail);
 * ```
 */
export async function tryExport(
  endpoint: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<{ ok: boolean; detail: string }> {
  const url = `${endpoint}/v1/metrics`;
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ resourceMetrics: [] }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel();
    return res.ok
      ? { ok: true, detail: `${url} answered ${res.status}` }
      : { ok: false, detail: `${url} answered ${res.status} ${res.statusText}` };
  } catch (e) {
    const err = e as Error & { cause?: { code?: string } };
    const why = err.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : err.message;
    return { ok: false, detail: `${url} failed: ${why}` };
  }
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
  const { file, environment, values } = ctx.settings;
  const where = file
    ? `${file}${environment ? ` [forklift:${environment}]` : ""}`
    : "no config file";
  ctx.print(`Configuration OK (${where}; ${values.workers} worker(s))\n`);
  if (!ctx.commandLine.switches.has("connect")) return 0;
  const endpoint = values.otlp_endpoint as string | null;
  if (endpoint === null) {
    throw new ConfigError(
      "No otlp_endpoint is set, nothing to connect to (set --otlp-endpoint or OTEL_EXPORTER_OTLP_ENDPOINT)",
    );
  }
  const r = await tryExport(endpoint, (values.otlp_headers ?? {}) as Record<string, string>, 5000);
  ctx.print(`${r.ok ? "Export OK" : "Export failed"}: ${r.detail}\n`);
  return r.ok ? 0 : EXIT_CONNECT_FAILED;
}
