/**
 * The reporter's one timer (unref'd): armed when `welcome` arrives (or on
 * the first recording, standalone), it serves the harvest and the heartbeat
 * schedule, and the event-loop probe when runtime metrics are on: the probe
 * sets the pace the timer turns at, the harvest and the heartbeat run on the
 * turns that find them due.
 *
 * @module
 */

import { unrefTimer } from "../runtime/timers.ts";

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * Period of the one timer that serves both the harvest and the heartbeat
 * schedule: their greatest common divisor when it is not much smaller than
 * the shorter one, else the shorter one.
 *
 * @example Harvest every 5 s, heartbeat every 15 s
 * ```ts
 * import assert from "node:assert/strict";
 * import { timerPeriod } from "./harvest_timer.ts";
 * assert.ok(timerPeriod(5000, 15000) === 5000);
 * ```
 */
export function timerPeriod(harvestMs: number, heartbeatMs: number): number {
  if (!(heartbeatMs > 0)) return harvestMs;
  const shorter = Math.min(harvestMs, heartbeatMs);
  const d = gcd(harvestMs, heartbeatMs);
  return d >= shorter / 4 ? d : shorter;
}

/** What the timer needs of the reporter's process. */
export interface TimerHost {
  /** Arms a repeating timer. */
  setInterval(fn: () => void, ms: number): unknown;
  /** Clears a timer. */
  clearTimer(handle: unknown): void;
  /** Monotonic milliseconds. */
  now(): number;
}

/**
 * The one repeating timer of a reporter and when its harvest and heartbeat
 * are next due.
 *
 * @example Harvest every 5 s, heartbeat every 15 s
 * ```ts
 * import assert from "node:assert/strict";
 * import { HarvestTimer } from "./harvest_timer.ts";
 * let now = 0;
 * const timer = new HarvestTimer({ setInterval: () => 1, clearTimer() {}, now: () => now }, () => {});
 * timer.schedule(5000, 15000);
 * const sent: string[] = [];
 * for (now = 5000; now <= 15000; now += 5000) {
 *   timer.turn(() => (sent.push("harvest"), true), () => sent.push("heartbeat"));
 * }
 * assert.deepEqual(sent, ["harvest", "harvest", "harvest"]);
 * assert.deepEqual([timer.armed, timer.active, timer.periodMs], [1, true, 5000]);
 * ```
 */
export class HarvestTimer {
  readonly #host: TimerHost;
  readonly #tick: () => void;
  #timer: unknown = undefined;
  #armed = 0;
  #periodMs = 0;
  /** The period the timer turns at: the schedule's, or the probe's pace when shorter. */
  #tickMs = 0;
  #paceMs = 0;
  #harvestMs = 0;
  #heartbeatMs = 0;
  #nextHarvest = 0;
  #nextHeartbeat = 0;

  /** A timer on `host` that calls `tick` on each turn, not armed yet. */
  constructor(host: TimerHost, tick: () => void) {
    this.#host = host;
    this.#tick = tick;
  }

  /** Timers armed in this process, ever. */
  get armed(): number {
    return this.#armed;
  }

  /** Whether the timer is armed now. */
  get active(): boolean {
    return this.#timer !== undefined;
  }

  /** Period of the harvest and heartbeat schedule in ms (0 when no timer is armed). */
  get periodMs(): number {
    return this.#timer === undefined ? 0 : this.#periodMs;
  }

  /** Period the timer turns at now in ms: {@linkcode HarvestTimer.periodMs} or a shorter pace. */
  get tickMs(): number {
    return this.#timer === undefined ? 0 : this.#tickMs;
  }

  /** Arms the timer every `periodMs`, replacing the one armed before: one timer, ever. */
  arm(periodMs: number): void {
    this.#periodMs = periodMs;
    this.#start();
    this.#armed++;
  }

  /**
   * Makes the one timer turn at least every `paceMs` (0: at the schedule's
   * period only). Changing the pace of an armed timer replaces the host's
   * timer with one of the new period; it is still the one timer, and does
   * not count as another armed.
   */
  pace(paceMs: number): void {
    if (paceMs === this.#paceMs) return;
    this.#paceMs = paceMs;
    if (this.#timer !== undefined && this.#period() !== this.#tickMs) this.#start();
  }

  #period(): number {
    const p = this.#paceMs;
    return p > 0 && p < this.#periodMs ? p : this.#periodMs;
  }

  #start(): void {
    if (this.#timer !== undefined) this.#host.clearTimer(this.#timer);
    this.#tickMs = this.#period();
    this.#timer = unrefTimer(this.#host.setInterval(this.#tick, this.#tickMs));
  }

  /** Clears the timer. */
  disarm(): void {
    if (this.#timer !== undefined) this.#host.clearTimer(this.#timer);
    this.#timer = undefined;
  }

  /** Harvests every `harvestMs` and sends a heartbeat every `heartbeatMs` (0: none) from now on. */
  schedule(harvestMs: number, heartbeatMs: number): void {
    this.#harvestMs = harvestMs;
    this.#heartbeatMs = heartbeatMs;
    const now = this.#host.now();
    this.#nextHarvest = now + harvestMs;
    this.#nextHeartbeat = now + heartbeatMs;
    this.arm(timerPeriod(harvestMs, heartbeatMs));
  }

  /**
   * One turn: calls `harvest` when due (a harvest sent counts as a
   * heartbeat), then `heartbeat` when due. Half a period of slack, so a
   * timer that fires a little early does not skip a turn.
   */
  turn(harvest: () => boolean, heartbeat: () => void): void {
    const now = this.#host.now();
    const slack = this.#tickMs / 2;
    if (now + slack >= this.#nextHarvest) {
      this.#nextHarvest = now + this.#harvestMs;
      if (harvest()) this.#nextHeartbeat = now + this.#heartbeatMs;
    }
    if (this.#heartbeatMs > 0 && now + slack >= this.#nextHeartbeat) {
      this.#nextHeartbeat = now + this.#heartbeatMs;
      heartbeat();
    }
  }
}
