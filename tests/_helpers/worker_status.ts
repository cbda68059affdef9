import type { WorkerStatus } from "../../src/export/status.ts";

/** A ready worker of `slot` as `/status` lists it, with `extra` over the defaults. */
export function workerStatus(slot: number, extra: Partial<WorkerStatus> = {}): WorkerStatus {
  return {
    slot,
    pid: 1000 + slot,
    generation: 1,
    state: "ready",
    spawned_at: "2025-01-01T00:00:00.000Z",
    ready_at: "2025-01-01T00:00:00.150Z",
    handshake_ms: 12.4,
    last_harvest_at: "2025-01-01T00:00:05.000Z",
    last_seen_at: "2025-01-01T00:00:05.000Z",
    requests: 10 * slot,
    restarts: 0,
    ...extra,
  };
}
