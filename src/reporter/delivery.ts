/**
 * Delivery of harvests to the master: numbering (`seq`), the harvests in
 * flight until their ack, resending a late one with its own `seq`, and
 * splitting a big cut into messages of bounded size.
 *
 * @module
 */

import type { HarvestMetric, WorkerMessage } from "../protocol/messages.ts";
import { PROTOCOL_VERSION } from "../protocol/messages.ts";
import type { HarvestCut, Storage } from "./storage.ts";

/** How long the reporter waits for an ack before it gives up on it. */
export const ACK_TIMEOUT_MS = 1000;

/** Points per harvest message at most: a big cut goes as several, far below any frame limit. */
export const MAX_HARVEST_POINTS = 2_000;

/** An unacked harvest is sent again after this many harvest intervals. */
const RESEND_INTERVALS = 2;

/** A harvest sent and not acked yet; a resend carries the same `seq` and data. */
interface InFlight {
  seq: number;
  /** The storage cut it came from; its last message's ack acknowledges the cut. */
  cut: number;
  metrics: HarvestCut["metrics"];
  dropped: number;
  requests: number;
  sentAt: number;
}

/** What delivery needs of the reporter's process: its clock, one-shot timers and channel. */
export interface DeliveryHost {
  /** Monotonic milliseconds. */
  now(): number;
  /** Arms a one-shot timer. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Clears a timer. */
  clearTimer(handle: unknown): void;
  /** Sends a message to the master; `done` is called once it left (or failed). */
  send(message: WorkerMessage, done?: (error: unknown) => void): void;
  /** Requests completed so far (cumulative), carried by every harvest. */
  requests(): number;
  /** Called just before each cut: figures sampled once per harvest are recorded here. */
  beforeCut?(): void;
}

/**
 * The harvests of one reporter on their way to the master. The master merges
 * each `seq` once and acks it; data leaves the storage's keeping only on ack.
 *
 * @example Send a harvest and take its ack
 * ```ts
 * import assert from "node:assert/strict";
 * import { HarvestDelivery } from "./delivery.ts";
 * import { Storage } from "./storage.ts";
 * const sent: unknown[] = [];
 * const delivery = new HarvestDelivery(new Storage(), {
 *   now: () => 0,
 *   setTimeout: (fn, ms) => setTimeout(fn, ms),
 *   clearTimer: (t) => clearTimeout(t as number),
 *   send: (m) => sent.push(m),
 *   requests: () => 0,
 * });
 * delivery.harvestMs = 5000;
 * delivery.harvest();
 * delivery.ack(1);
 * assert.deepEqual([sent.length, delivery.seq, delivery.acked], [1, 1, 1]);
 * ```
 */
export class HarvestDelivery {
  /** The harvest interval (ms): an unacked harvest is resent after two of them. */
  harvestMs = 0;
  readonly #storage: Storage;
  readonly #host: DeliveryHost;
  #seq = 0;
  #acked = 0;
  /** Unacked harvests, oldest first. */
  #inflight: InFlight[] = [];
  #ackWaiters = new Set<() => void>();

  /** Delivers the cuts of `storage` through `host`. */
  constructor(storage: Storage, host: DeliveryHost) {
    this.#storage = storage;
    this.#host = host;
  }

  /** Last harvest sequence number sent. */
  get seq(): number {
    return this.#seq;
  }

  /** Highest harvest sequence number acknowledged. */
  get acked(): number {
    return this.#acked;
  }

  /** The `seq` of the last harvest still awaiting its ack, if any. */
  get lastInFlight(): number | undefined {
    return this.#inflight.at(-1)?.seq;
  }

  /**
   * Cuts the storage and sends a harvest. While the channel is open the master
   * acks every harvest it receives, so one still awaiting its ack is late, not
   * lost: sending its data again would count it twice. A regular harvest
   * therefore waits (returns false); only a forced final harvest, after waiting
   * for that ack in vain, folds the unacked data in.
   */
  harvest(force = false): boolean {
    const now = this.#host.now();
    if (this.#inflight.length > 0) {
      // The master merges each seq once, so a resend can never count twice.
      const due = now - this.#inflight[0].sentAt >= RESEND_INTERVALS * this.harvestMs;
      if (due || force) {
        for (const h of this.#inflight) this.#send(h, now);
      }
      if (!force) return due;
    }
    this.#host.beforeCut?.();
    const cut = this.#storage.harvestCut();
    const requests = this.#host.requests();
    for (const [i, metrics] of splitMetrics(cut.metrics, MAX_HARVEST_POINTS).entries()) {
      const h: InFlight = {
        seq: ++this.#seq,
        cut: cut.number,
        metrics,
        dropped: i === 0 ? cut.dropped : 0,
        requests,
        sentAt: now,
      };
      this.#inflight.push(h);
      this.#send(h, now);
    }
    return true;
  }

  #send(h: InFlight, now: number): void {
    h.sentAt = now;
    this.#host.send({
      type: "harvest",
      v: PROTOCOL_VERSION,
      seq: h.seq,
      metrics: h.metrics,
      dropped: h.dropped,
      requests: h.requests,
    });
  }

  /** The master acks every harvest up to `seq` (acks are cumulative). */
  ack(seq: number): void {
    if (seq > this.#acked) this.#acked = seq;
    const acked = this.#inflight.filter((h) => h.seq <= seq);
    this.#inflight = this.#inflight.filter((h) => h.seq > seq);
    // A cut is the master's once none of its messages is in flight.
    for (const h of acked) {
      if (!this.#inflight.some((p) => p.cut === h.cut)) this.#storage.acknowledge(h.cut);
    }
    for (const wake of this.#ackWaiters) wake();
  }

  /**
   * Harvests now, out of schedule: first waits (bounded) for the ack of the
   * harvest in flight, so that only a lost one is folded in; then harvests
   * if `still()` says the reporter still may.
   */
  async flush(still: () => boolean = () => true): Promise<void> {
    const last = this.lastInFlight;
    if (last !== undefined) await this.awaitAck(last);
    if (still()) this.harvest(true);
  }

  /**
   * The last words of a worker: a final harvest with everything unacked, its
   * ack awaited, then `bye`. Resolves true once `bye` left; each step is
   * bounded by {@linkcode ACK_TIMEOUT_MS}.
   */
  async farewell(): Promise<boolean> {
    await this.flush();
    const seq = this.#seq;
    await this.awaitAck(seq);
    const host = this.#host;
    return await new Promise<boolean>((resolve) => {
      const timer = host.setTimeout(() => resolve(false), ACK_TIMEOUT_MS);
      host.send({ type: "bye", v: PROTOCOL_VERSION, seq }, () => {
        host.clearTimer(timer);
        resolve(true);
      });
    });
  }

  /** Resolves true once `seq` is acked, false after `ms`. Holds the process open meanwhile. */
  awaitAck(seq: number, ms: number = ACK_TIMEOUT_MS): Promise<boolean> {
    if (this.#acked >= seq) return Promise.resolve(true);
    const host = this.#host;
    return new Promise((resolve) => {
      const finish = (ok: boolean) => {
        this.#ackWaiters.delete(check);
        host.clearTimer(timer);
        resolve(ok);
      };
      const check = () => {
        if (this.#acked >= seq) finish(true);
      };
      const timer = host.setTimeout(() => finish(false), ms);
      this.#ackWaiters.add(check);
    });
  }
}

/**
 * Splits metrics into groups of at most `maxPoints` points each (a point in
 * the `ids` and `values` columns counts as one), an instrument's points
 * across several groups when it has more. Always at least one group (empty
 * when there is nothing), so an empty harvest still goes out as a heartbeat
 * would.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitMetrics } from "./delivery.ts";
 * const points = Array.from({ length: 5 }, (_, i) => ({ attributes: { i }, value: i }));
 * const groups = splitMetrics([{ name: "x", kind: "counter", points }], 2);
 * assert.ok(groups.length === 3 && groups[2][0].points.length === 1);
 * ```
 */
export function splitMetrics(metrics: HarvestMetric[], maxPoints: number): HarvestMetric[][] {
  const groups: HarvestMetric[][] = [[]];
  let room = maxPoints;
  const next = () => {
    if (room > 0) return;
    groups.push([]);
    room = maxPoints;
  };
  for (const m of metrics) {
    const { ids = [], values = [] } = m;
    let at = 0;
    let column = 0;
    do {
      next();
      const part: HarvestMetric = { ...m, points: m.points.slice(at, at + room) };
      delete part.ids;
      delete part.values;
      at += part.points.length;
      room -= part.points.length;
      if (room > 0 && column < ids.length) {
        part.ids = ids.slice(column, column + room);
        part.values = values.slice(column, column + room);
        column += part.ids.length;
        room -= part.ids.length;
      }
      groups.at(-1)!.push(part);
    } while (at < m.points.length || column < ids.length);
  }
  return groups;
}
