/**
 * What `forklift top` draws, as pure functions of two `/status` documents:
 * rates over the time between them, latency percentiles from the duration
 * histogram's buckets, and the table cut to the terminal's width.
 *
 * @module
 */
import {
  formatBytes,
  formatSeconds,
  type StatusDocument,
  type WorkerStatus,
} from "../export/status.ts";

/**
 * The `q`-quantile of a histogram as Prometheus's `histogram_quantile()`
 * computes it: linear within the bucket that holds the rank, the lowest
 * bucket starting at 0, and the highest bound when the rank falls past every
 * bound. `counts` has one count per bucket (`boundaries.length + 1`, the last
 * past every bound). Null when the histogram is empty or malformed.
 *
 * @example The median of 10 requests, 4 under 0.1 s and 6 under 0.5 s
 * ```ts
 * import assert from "node:assert/strict";
 * import { histogramQuantile } from "./top_view.ts";
 * assert.equal(histogramQuantile(0.5, [0.1, 0.5], [4, 6, 0]), 0.1 + 0.4 * (1 / 6));
 * assert.equal(histogramQuantile(0.99, [0.1, 0.5], [4, 5, 1]), 0.5);
 * assert.equal(histogramQuantile(0.5, [0.1], [0, 0]), null);
 * ```
 */
export function histogramQuantile(
  q: number,
  boundaries: readonly number[],
  counts: readonly number[],
): number | null {
  if (counts.length !== boundaries.length + 1 || boundaries.length === 0) return null;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  const cumulative: number[] = [];
  let total = 0;
  for (const c of counts) cumulative.push(total += Math.max(0, c));
  if (total === 0) return null;
  const rank = q * total;
  let b = cumulative.findIndex((c) => c >= rank);
  if (b === -1) b = counts.length - 1;
  // Past every bound: the highest bound is all that is known.
  if (b === counts.length - 1) return boundaries[boundaries.length - 1];
  if (b === 0 && boundaries[0] <= 0) return boundaries[0];
  const start = b === 0 ? 0 : boundaries[b - 1];
  const end = boundaries[b];
  const before = b === 0 ? 0 : cumulative[b - 1];
  const inBucket = cumulative[b] - before;
  return start + (end - start) * ((rank - before) / inBucket);
}

/** One `/status` document and when it was read (ms, any monotonic clock). */
export interface TopSample {
  at: number;
  status: StatusDocument;
}

/** One worker's row: its `/status` object and the rates since the previous sample. */
export interface TopRow {
  worker: WorkerStatus;
  /** Requests completed a second, null without a previous sample of this process. */
  requestsPerSecond: number | null;
  p50: number | null;
  p99: number | null;
  /** Seconds since it was spawned. */
  uptime: number;
}

/** A whole view: the master's document, its rows, and the totals over all rows. */
export interface TopFrame {
  status: StatusDocument;
  rows: TopRow[];
  requestsPerSecond: number | null;
  p50: number | null;
  p99: number | null;
}

/** Buckets of `cur` minus those of `prev` (the whole of `cur` when they do not match). */
function durationDelta(
  prev: WorkerStatus | undefined,
  cur: WorkerStatus,
): { boundaries: number[]; counts: number[] } | undefined {
  const c = cur.request_duration;
  if (!c) return undefined;
  const p = prev?.request_duration;
  const same = p && p.boundaries.length === c.boundaries.length &&
    p.boundaries.every((b, i) => b === c.boundaries[i]);
  return {
    boundaries: c.boundaries,
    counts: c.bucket_counts.map((n, i) => same ? Math.max(0, n - p.bucket_counts[i]) : n),
  };
}

/**
 * The frame of `cur`, with rates and percentiles over the time since `prev`
 * (a worker's own since it started when `prev` did not know it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { topFrame } from "./top_view.ts";
 * const doc = (requests: number) => ({
 *   pid: 1, version: "0.1.0", started_at: "2025-01-01T00:00:00.000Z", uptime_s: 5,
 *   service_name: "api", master_timers_armed: 0,
 *   workers: [{
 *     slot: 1, pid: 2, generation: 1, state: "ready" as const,
 *     spawned_at: "2025-01-01T00:00:00.000Z", ready_at: null, handshake_ms: null,
 *     last_harvest_at: null, last_seen_at: null, requests, restarts: 0,
 *   }],
 *   totals: { workers: 1, requests, restarts: 0, harvests: 0, dropped_points: 0 },
 * });
 * const f = topFrame({ at: 0, status: doc(10) }, { at: 2000, status: doc(30) }, 0);
 * assert.equal(f.rows[0].requestsPerSecond, 10);
 * ```
 */
export function topFrame(prev: TopSample | undefined, cur: TopSample, nowWallMs: number): TopFrame {
  const before = new Map<string, WorkerStatus>();
  for (const w of prev?.status.workers ?? []) before.set(`${w.pid}:${w.spawned_at}`, w);
  const seconds = prev === undefined ? 0 : (cur.at - prev.at) / 1000;
  let total: { boundaries: number[]; counts: number[] } | undefined;
  let rate: number | null = null;
  const rows = [...cur.status.workers]
    .sort((a, b) => a.slot - b.slot || a.generation - b.generation)
    .map((w): TopRow => {
      const p = before.get(`${w.pid}:${w.spawned_at}`);
      const perSecond = p !== undefined && seconds > 0
        ? Math.max(0, w.requests - p.requests) / seconds
        : null;
      if (perSecond !== null) rate = (rate ?? 0) + perSecond;
      const d = durationDelta(p, w);
      if (d !== undefined) {
        const same = total && total.boundaries.length === d.boundaries.length &&
          total.boundaries.every((b, i) => b === d.boundaries[i]);
        if (total === undefined) total = { boundaries: d.boundaries, counts: [...d.counts] };
        else if (same) d.counts.forEach((n, i) => total!.counts[i] += n);
      }
      return {
        worker: w,
        requestsPerSecond: perSecond,
        p50: d ? histogramQuantile(0.5, d.boundaries, d.counts) : null,
        p99: d ? histogramQuantile(0.99, d.boundaries, d.counts) : null,
        uptime: Math.max(0, (nowWallMs - Date.parse(w.spawned_at)) / 1000),
      };
    });
  const t = total as { boundaries: number[]; counts: number[] } | undefined;
  return {
    status: cur.status,
    rows,
    requestsPerSecond: rate,
    p50: t ? histogramQuantile(0.5, t.boundaries, t.counts) : null,
    p99: t ? histogramQuantile(0.99, t.boundaries, t.counts) : null,
  };
}

/**
 * A duration in seconds, short: `42s`, `7m05s`, `3h12m`, `2d04h`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatUptime } from "./top_view.ts";
 * assert.equal(formatUptime(425), "7m05s");
 * ```
 */
export function formatUptime(seconds: number): string {
  const s = Math.floor(seconds);
  const two = (n: number) => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${two(Math.floor(s / 3600) % 24)}h`;
}

const dash = (v: number | null | undefined, f: (n: number) => string) =>
  v === null || v === undefined || !Number.isFinite(v) ? "-" : f(v);
const percent = (v: number) => `${(v * 100).toFixed(1)}%`;
const perSecond = (v: number) => v < 10 ? v.toFixed(1) : String(Math.round(v));

/** The columns, in the order they are dropped last to first when the terminal is narrow. */
export const TOP_COLUMNS: ReadonlyArray<{
  title: string;
  right: boolean;
  cell: (row: TopRow) => string;
}> = [
  { title: "SLOT", right: true, cell: (r) => String(r.worker.slot) },
  { title: "PID", right: true, cell: (r) => r.worker.pid === null ? "-" : String(r.worker.pid) },
  { title: "GEN", right: true, cell: (r) => String(r.worker.generation) },
  { title: "STATE", right: false, cell: (r) => r.worker.state },
  { title: "CPU", right: true, cell: (r) => dash(r.worker.cpu, percent) },
  { title: "MEM", right: true, cell: (r) => formatBytes(r.worker.memory_bytes) },
  { title: "HEAP", right: true, cell: (r) => formatBytes(r.worker.heap_used_bytes) },
  { title: "LOOP P99", right: true, cell: (r) => formatSeconds(r.worker.loop_delay_p99_seconds) },
  { title: "REQ/S", right: true, cell: (r) => dash(r.requestsPerSecond, perSecond) },
  { title: "P50", right: true, cell: (r) => formatSeconds(r.p50) },
  { title: "P99", right: true, cell: (r) => formatSeconds(r.p99) },
  { title: "RESTARTS", right: true, cell: (r) => String(r.worker.restarts) },
  { title: "UPTIME", right: true, cell: (r) => dash(r.uptime, formatUptime) },
];

/** Cuts `line` to `width` characters. */
function fit(line: string, width: number): string {
  return line.length <= width ? line : line.slice(0, Math.max(0, width));
}

/**
 * The lines of a frame for a terminal `width` columns wide: two header lines
 * (the master, then totals), a blank line, the table. Columns that do not fit
 * are dropped from the right; header lines are cut.
 *
 * @example A narrow terminal keeps the first columns
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderTop } from "./top_view.ts";
 * const lines = renderTop({
 *   status: {
 *     pid: 1, version: "0.1.0", started_at: "2025-01-01T00:00:00.000Z", uptime_s: 5,
 *     service_name: "api", master_timers_armed: 0, workers: [],
 *     totals: { workers: 0, requests: 0, restarts: 0, harvests: 0, dropped_points: 0 },
 *   },
 *   rows: [], requestsPerSecond: null, p50: null, p99: null,
 * }, 20);
 * assert.equal(lines[3], "SLOT  PID  GEN");
 * ```
 */
export function renderTop(frame: TopFrame, width: number): string[] {
  const s = frame.status;
  const ws = s.workers;
  const sum = (f: (w: WorkerStatus) => number | null | undefined) => {
    const v = ws.map(f).filter((x): x is number => typeof x === "number");
    return v.length ? v.reduce((a, b) => a + b, 0) : null;
  };
  const head = [
    `${s.service_name}  master pid ${s.pid}  forklift ${s.version}  up ${
      dash(s.uptime_s, formatUptime)
    }  ${s.ready === undefined ? "" : s.ready ? "ready" : `not ready: ${s.ready_reason ?? ""}`}`
      .trimEnd(),
    `workers ${s.totals?.workers}/${ws.length} ready  cpu ${
      dash(sum((w) => w.cpu), percent)
    }  mem ${formatBytes(sum((w) => w.memory_bytes))}  req/s ${
      dash(frame.requestsPerSecond, perSecond)
    }  p50 ${formatSeconds(frame.p50)}  p99 ${
      formatSeconds(frame.p99)
    }  restarts ${s.totals?.restarts}  requests ${s.totals?.requests}`,
  ];
  // String(): a field missing from the document shows as "undefined", never throws.
  const cells = TOP_COLUMNS.map((c) => frame.rows.map((r) => String(c.cell(r))));
  const widths = TOP_COLUMNS.map((c, i) =>
    Math.max(c.title.length, ...cells[i].map((x) => x.length))
  );
  let n = TOP_COLUMNS.length;
  const used = (k: number) => widths.slice(0, k).reduce((a, b) => a + b, 0) + 2 * (k - 1);
  while (n > 1 && used(n) > width) n--;
  const line = (get: (i: number) => string) =>
    Array.from({ length: n }, (_, i) => {
      const text = get(i);
      return TOP_COLUMNS[i].right ? text.padStart(widths[i]) : text.padEnd(widths[i]);
    }).join("  ").trimEnd();
  return [
    ...head.map((h) => fit(h, width)),
    "",
    fit(line((i) => TOP_COLUMNS[i].title), width),
    ...frame.rows.map((_, r) => fit(line((i) => cells[i][r]), width)),
  ];
}
