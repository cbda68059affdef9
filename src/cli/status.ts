/**
 * `forklift status`: asks a running master for its `/status` document.
 *
 * @module
 */
import { ConfigError } from "../config/errors.ts";
import { authorizationHeader } from "../export/auth.ts";
import { formatStatus, renderStatus, type StatusDocument } from "../export/status.ts";
import { localHttpUrl, parseHostPort } from "../protocol/host_port.ts";
import type { CommandContext } from "./context.ts";

/**
 * Runs `forklift status`: prints the document, and exits 1 when the master is
 * not ready (as `GET /ready` would answer 503), so that it can be a probe.
 * It sends `metrics_token` or `metrics_basic_auth`, read as `forklift run`
 * reads them, when one is set.
 *
 * @example
 * ```ts ignore
 * import { statusCommand } from "./status.ts";
 * await statusCommand(ctx);
 * ```
 */
export async function statusCommand(ctx: CommandContext): Promise<number> {
  const read = await readStatus(ctx);
  if ("error" in read) {
    if (read.plain) ctx.print(`${read.error}\n`);
    else console.error(`forklift: ${read.error}`);
    return 1;
  }
  const { url, doc } = read;
  ctx.print(
    ctx.commandLine.switches.has("json") ? renderStatus(doc) : formatStatus(doc),
  );
  if (doc.ready === true) return 0;
  console.error(`forklift: The master at ${url} is not ready: ${doc.ready_reason ?? "unknown"}`);
  return 1;
}

/**
 * Reads the `/status` document of the master at `metrics_bind`, sending the
 * credential set; on failure, one line that says why (without `forklift: `;
 * `plain` when it is not a refusal but an answer that is not a master's).
 * Throws a {@linkcode ConfigError} when `metrics_bind` is off.
 *
 * @example
 * ```ts ignore
 * import { readStatus } from "./status.ts";
 * const read = await readStatus(ctx);
 * if (!("error" in read)) console.log(read.doc.workers.length);
 * ```
 */
export async function readStatus(
  ctx: Pick<CommandContext, "settings">,
): Promise<{ url: string; doc: StatusDocument } | { error: string; plain?: boolean }> {
  const bind = ctx.settings.config.metricsBind;
  if (bind === null) {
    throw new ConfigError("metrics_bind is off: there is no /status to ask (set --metrics-bind)");
  }
  const target = parseHostPort(bind);
  const url = target ? localHttpUrl(target.host, target.port, "/status") : `http://${bind}/status`;
  const { metricsToken: token, metricsBasicAuth: basicAuth } = ctx.settings.config;
  const authorization = authorizationHeader({ token, basicAuth });
  try {
    const res = await fetch(url, {
      signal: AbortSignal.timeout(5000),
      headers: authorization === undefined ? {} : { authorization },
    });
    if (res.status === 401) {
      await res.body?.cancel();
      return {
        error: authorization === undefined
          ? `The master at ${url} asks for a credential: set metrics_token or metrics_basic_auth (FORKLIFT_METRICS_TOKEN, FORKLIFT_METRICS_BASIC_AUTH) as the master has it`
          : `The master at ${url} refused the credential sent: metrics_token or metrics_basic_auth differs from the master's`,
      };
    }
    if (!res.ok) {
      await res.body?.cancel();
      return { error: `${url} answered ${res.status}: is that a forklift master?`, plain: true };
    }
    const doc = await res.json();
    if (!Array.isArray(doc?.workers)) {
      return { error: `${url} answered with no workers: is that a forklift master?`, plain: true };
    }
    return { url, doc };
  } catch (e) {
    const err = e as Error;
    const why = err.name === "TimeoutError"
      ? "no answer within 5 s"
      : /ECONNREFUSED|refused|Unable to connect/i.test(`${err.message} ${err.cause ?? ""}`)
      ? "connection refused (is a master running with this metrics_bind?)"
      : err.message.split("\n")[0];
    return { error: `No forklift master answers at ${url}: ${why}` };
  }
}
