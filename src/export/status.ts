/**
 * The `/status` document: what the master knows about itself and each of its
 * workers, as plain data the master fills and `forklift status` reads.
 *
 * @module
 */

/** Where a worker is in its life. */
export type WorkerState =
  /** Spawned; no `ready` yet. */
  | "starting"
  /** Its server listens. */
  | "ready"
  /** Asked to drain and exit. */
  | "stopping"
  /** Crashed; waiting out the backoff before its slot is respawned. */
  | "backoff"
  /** Gone. */
  | "exited";

/**
 * A worker's health in the `/status` document: `cpu` and `memory_bytes` as
 * the master reads them from `/proc` (its process group), the others as the
 * worker last reported them. Null when not known (yet), or not on this platform.
 */
export interface WorkerFigureFields {
  /** Cores used over the last sampling interval (0.5 is half of one), null before two samples. */
  cpu?: number | null;
  /** Resident memory of the worker's process group. */
  memory_bytes?: number | null;
  heap_used_bytes?: number | null;
  heap_limit_bytes?: number | null;
  /** Event-loop delay over the worker's last harvest interval. */
  loop_delay_p99_seconds?: number | null;
  loop_delay_max_seconds?: number | null;
  /** Requests in flight at the worker's last harvest. */
  active_requests?: number | null;
  /**
   * `http.server.request.duration` of this process since it started, all
   * routes and statuses together: `bucket_counts[i]` requests took at most
   * `boundaries[i]` seconds (and more than the bound before); the last count is
   * past every bound. Null before its first request.
   */
  request_duration?: { boundaries: number[]; bucket_counts: number[] } | null;
}

const FIGURE_FIELDS: ReadonlyArray<keyof WorkerFigureFields> = [
  "cpu",
  "memory_bytes",
  "heap_used_bytes",
  "heap_limit_bytes",
  "loop_delay_p99_seconds",
  "loop_delay_max_seconds",
  "active_requests",
];

/** One worker process in the `/status` document. Times are ISO 8601 strings. */
export interface WorkerStatus extends WorkerFigureFields {
  /** Stable slot, 1..N, reused on respawn. */
  slot: number;
  /** Process id, or `null` when no process holds the slot. */
  pid: number | null;
  /** Generation of the process in this slot. */
  generation: number;
  state: WorkerState;
  spawned_at: string;
  ready_at: string | null;
  /** Milliseconds from spawn to `welcome` sent, or `null` before the handshake. */
  handshake_ms: number | null;
  last_harvest_at: string | null;
  /** Last message of any kind from this worker. */
  last_seen_at: string | null;
  /** Requests completed by this process. */
  requests: number;
  /** Times this slot has been respawned. */
  restarts: number;
  /** The address the worker's server listens on, when it reported one. */
  addr?: string | null;
  /** The worker's runtime, from its hello (`deno/2.9.6`). */
  runtime?: string | null;
  /** Every state change with its time. */
  transitions?: Array<{ state: string; at: string }>;
}

/** Totals over the master's lifetime, in the `/status` document. */
export interface StatusTotals {
  /** Workers ready now. */
  workers: number;
  /** Requests completed by all workers, the exited ones included. */
  requests: number;
  restarts: number;
  harvests: number;
  dropped_points: number;
}

/** Where the master is in its life: booting its first workers, running, stopping, exited. */
export type MasterPhaseName = "booting" | "running" | "stopping" | "exited";

/** Whether the master should get traffic, and why not. */
export interface Readiness {
  ready: boolean;
  /** Why, in a few words (`booting: 1 of 2 workers ready`). */
  reason: string;
}

/**
 * The rule behind `GET /ready`: not ready until the first boot has every
 * worker ready (a load balancer must not send traffic to half a service),
 * then ready while at least one worker is (a reload or a crash leaves others
 * serving), and not ready again once the master stops.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readiness } from "./status.ts";
 * assert.ok(!readiness("booting", 1, 2).ready);
 * assert.ok(readiness("running", 1, 2).ready);
 * assert.ok(!readiness("stopping", 2, 2).ready);
 * ```
 */
export function readiness(
  phase: MasterPhaseName,
  readyWorkers: number,
  workers: number,
): Readiness {
  switch (phase) {
    case "booting":
      return { ready: false, reason: `booting: ${readyWorkers} of ${workers} workers ready` };
    case "running":
      return readyWorkers > 0
        ? { ready: true, reason: `${readyWorkers} of ${workers} workers ready` }
        : { ready: false, reason: `no worker ready (of ${workers})` };
    default:
      return { ready: false, reason: phase };
  }
}

/** The whole `/status` document. */
export interface StatusDocument {
  /** The master's process id. */
  pid: number;
  /** Whether `GET /ready` answers 200 (see {@linkcode readiness}). */
  ready?: boolean;
  /** Why it is ready or not. */
  ready_reason?: string;
  /** The master's phase. */
  phase?: MasterPhaseName;
  /** forklift's version. */
  version: string;
  started_at: string;
  uptime_s: number;
  service_name: string;
  /** Timers a reporter has ever armed in the master's process: 0, as it loads none. */
  master_timers_armed: number;
  workers: WorkerStatus[];
  /** Worker replacements by reason (crash, timeout, reload, max_requests, scale). */
  restarts_by_reason?: Record<string, number>;
  totals: StatusTotals;
}

/**
 * Renders a status document as the `/status` response body: indented JSON
 * ending in a newline, workers in slot order.
 *
 * @example Render a document
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderStatus } from "./status.ts";
 * const body = renderStatus({
 *   pid: 100,
 *   version: "0.1.0",
 *   started_at: "2025-01-01T00:00:00.000Z",
 *   uptime_s: 5,
 *   service_name: "api",
 *   master_timers_armed: 1,
 *   workers: [],
 *   totals: { workers: 0, requests: 0, restarts: 0, harvests: 0, dropped_points: 0 },
 * });
 * assert.ok(JSON.parse(body).service_name === "api");
 * ```
 */
export function renderStatus(status: StatusDocument): string {
  const workers = [...status.workers].sort((a, b) =>
    a.slot - b.slot || a.generation - b.generation
  );
  return JSON.stringify({ ...status, workers }, null, 2) + "\n";
}

/**
 * Formats a status document as a short table for a terminal.
 *
 * @example Print a running master's workers
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatStatus } from "./status.ts";
 * const text = formatStatus({
 *   pid: 100,
 *   version: "0.1.0",
 *   started_at: "2025-01-01T00:00:00.000Z",
 *   uptime_s: 5,
 *   service_name: "api",
 *   master_timers_armed: 1,
 *   workers: [{
 *     slot: 1, pid: 101, generation: 1, state: "ready", spawned_at: "2025-01-01T00:00:00.000Z",
 *     ready_at: "2025-01-01T00:00:00.200Z", handshake_ms: 40, last_harvest_at: null,
 *     last_seen_at: null, requests: 12, restarts: 0,
 *   }],
 *   totals: { workers: 1, requests: 12, restarts: 0, harvests: 0, dropped_points: 0 },
 * });
 * assert.ok(text.includes("ready"));
 * ```
 */
export function formatStatus(status: StatusDocument): string {
  // A document from a master that measures nothing keeps the table it had.
  const figures = status.workers.some((w) => FIGURE_FIELDS.some((k) => w[k] !== undefined));
  const header = [
    "SLOT",
    "PID",
    "GEN",
    "STATE",
    "HANDSHAKE",
    "REQUESTS",
    "RESTARTS",
    "LAST HARVEST",
    ...(figures ? ["CPU", "MEMORY", "HEAP", "LOOP P99", "LOOP MAX", "ACTIVE"] : []),
  ];
  const rows = [...status.workers]
    .sort((a, b) => a.slot - b.slot || a.generation - b.generation)
    .map((w) => [
      String(w.slot),
      w.pid === null ? "-" : String(w.pid),
      String(w.generation),
      w.state,
      w.handshake_ms === null ? "-" : `${Math.round(w.handshake_ms)} ms`,
      String(w.requests),
      String(w.restarts),
      w.last_harvest_at ?? "-",
      ...(figures
        ? [
          w.cpu == null ? "-" : `${(w.cpu * 100).toFixed(1)}%`,
          formatBytes(w.memory_bytes),
          formatBytes(w.heap_used_bytes),
          formatSeconds(w.loop_delay_p99_seconds),
          formatSeconds(w.loop_delay_max_seconds),
          w.active_requests == null ? "-" : String(w.active_requests),
        ]
        : []),
    ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  const t = status.totals;
  return [
    `${status.service_name}: master pid ${status.pid}, forklift ${status.version}, up ${
      Math.round(status.uptime_s)
    } s`,
    `workers ${t.workers}, requests ${t.requests}, restarts ${t.restarts}, harvests ${t.harvests}, dropped points ${t.dropped_points}`,
    ...(status.ready === undefined
      ? []
      : [`${status.ready ? "ready" : "not ready"}: ${status.ready_reason ?? status.phase ?? ""}`]),
    "",
    line(header),
    ...rows.map(line),
  ].join("\n") + "\n";
}

/**
 * Bytes for a person: `512 B`, `1.5 KiB`, `230.0 MiB`; `-` when unknown.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatBytes } from "./status.ts";
 * assert.equal(formatBytes(3 * 1024 * 1024), "3.0 MiB");
 * assert.equal(formatBytes(null), "-");
 * ```
 */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes == null || !Number.isFinite(bytes)) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) v /= 1024, i++;
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[i]}`;
}

/**
 * A short duration for a person: `850 µs`, `12.5 ms`, `1.20 s`; `-` when unknown.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatSeconds } from "./status.ts";
 * assert.equal(formatSeconds(0.0125), "12.5 ms");
 * ```
 */
export function formatSeconds(seconds: number | null | undefined): string {
  if (seconds == null || !Number.isFinite(seconds)) return "-";
  if (seconds < 0.001) return `${Math.round(seconds * 1e6)} µs`;
  if (seconds < 1) return `${(seconds * 1000).toFixed(1)} ms`;
  return `${seconds.toFixed(2)} s`;
}
