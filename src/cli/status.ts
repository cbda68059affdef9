/**
 * `forklift status`: asks a running master for its `/status` document.
 *
 * @module
 */
import { ConfigError } from "../config/errors.ts";
import type { CommandContext } from "./context.ts";

interface WorkerRow {
  slot?: number;
  pid?: number;
  generation?: number;
  state?: string;
  requests?: number;
  restarts?: number;
  handshake_ms?: number | null;
}

/**
 * Renders a `/status` document as a table.
 *
 * @example
 * ```ts
 * import { renderStatus } from "./status.ts";
 * console.log(renderStatus({ pid: 1, workers: [{ slot: 1, pid: 2, state: "ready" }] }));
 * ```
 */
export function renderStatus(doc: Record<string, unknown>): string {
  const workers = (Array.isArray(doc.workers) ? doc.workers : []) as WorkerRow[];
  const head = `master pid ${doc.pid ?? "?"}, ${workers.length} worker(s)` +
    (doc.uptime_s !== undefined ? `, up ${doc.uptime_s} s` : "");
  const rows = [["slot", "pid", "gen", "state", "requests", "restarts", "handshake ms"]];
  for (const w of workers) {
    rows.push([w.slot, w.pid, w.generation, w.state, w.requests, w.restarts, w.handshake_ms].map(
      (x) => x === undefined || x === null ? "-" : String(x),
    ));
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return [head, ...rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd())]
    .join("\n") + "\n";
}

/**
 * Runs `forklift status`.
 *
 * @example
 * ```ts ignore
 * import { statusCommand } from "./status.ts";
 * await statusCommand(ctx);
 * ```
 */
export async function statusCommand(ctx: CommandContext): Promise<number> {
  const bind = ctx.settings.values.metrics_bind as string | null;
  if (bind === null) {
    throw new ConfigError("metrics_bind is off: there is no /status to ask (set --metrics-bind)");
  }
  const host = bind.startsWith("0.0.0.0:") ? bind.replace("0.0.0.0", "127.0.0.1") : bind;
  const url = `http://${host}/status`;
  let doc: Record<string, unknown>;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) {
      await res.body?.cancel();
      ctx.print(`${url} answered ${res.status}: is that a forklift master?\n`);
      return 1;
    }
    doc = await res.json();
  } catch (e) {
    const err = e as Error;
    const why = err.name === "TimeoutError" ? "no answer within 5 s" : err.message;
    console.error(`forklift: No forklift master answers at ${url}: ${why}`);
    return 1;
  }
  ctx.print(
    ctx.commandLine.switches.has("json") ? JSON.stringify(doc, null, 2) + "\n" : renderStatus(doc),
  );
  return 0;
}
