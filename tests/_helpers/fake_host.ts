/**
 * A fake {@linkcode ReporterHost} for unit tests: a recorded IPC channel, fake
 * time and fake timers, and an `exit` that only records its code.
 *
 * @module
 */

import type { WorkerMessage } from "../../src/protocol/messages.ts";
import type { ReporterHost, TimerHandle } from "../../src/reporter/host.ts";
import { FakeClock, type FakeTimer } from "./fake_clock.ts";

/** A host whose channel, clock and timers the test drives. */
export class FakeHost implements ReporterHost {
  pid = 4242;
  ppid = 1000;
  runtime = "test/1.0.0";
  vars: Record<string, string> = { FORKLIFT_MASTER_PID: "1000", FORKLIFT_WORKERS: "1" };
  channel = true;
  sent: WorkerMessage[] = [];
  exitCode: number | undefined;
  channelRefs: boolean[] = [];
  /** The host's time and timers. */
  readonly clock = new FakeClock();
  /** Off unless a test asks: the runtime sampler's figures would be in every harvest. */
  runtimeMetrics = false;
  #onMessage: Array<(raw: unknown) => void> = [];
  #onDisconnect: Array<() => void> = [];
  #ticks: Array<() => void> = [];

  env(name: string): string | undefined {
    return this.vars[name];
  }
  connected(): boolean {
    return this.channel;
  }
  send(message: WorkerMessage, done?: (error: unknown) => void): void {
    this.sent.push(structuredClone(message));
    done?.(null);
  }
  onMessage(listener: (raw: unknown) => void): void {
    this.#onMessage.push(listener);
  }
  onDisconnect(listener: () => void): void {
    this.#onDisconnect.push(listener);
  }
  refChannel(ref: boolean): void {
    this.channelRefs.push(ref);
  }
  setInterval(fn: () => void, ms: number): TimerHandle {
    return this.clock.schedule(fn, ms, true);
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.clock.schedule(fn, ms, false);
  }
  setLooseTimeout(fn: () => void, ms: number): TimerHandle {
    return this.clock.schedule(fn, ms, false);
  }
  clearTimer(handle: TimerHandle): void {
    this.clock.cancel((handle as { id: number }).id);
  }
  nextTick(fn: () => void): void {
    this.#ticks.push(fn);
  }
  now(): number {
    return this.clock.now();
  }
  /** Timers alive now, by id. */
  get timers(): ReadonlyMap<number, FakeTimer> {
    return this.clock.timers;
  }
  exit(code: number): void {
    this.exitCode = code;
  }

  /** Intervals (repeating timers) alive now. */
  intervals(): FakeTimer[] {
    return this.clock.intervals();
  }

  /** The master side: deliver a raw message to the reporter. */
  deliver(raw: unknown): void {
    for (const l of this.#onMessage) l(raw);
  }

  /** The master side: the channel closes. */
  disconnect(): void {
    this.channel = false;
    for (const l of this.#onDisconnect) l();
  }

  /** Runs queued `nextTick` callbacks. */
  runTicks(): void {
    const ticks = this.#ticks;
    this.#ticks = [];
    for (const fn of ticks) fn();
  }

  /** Moves the clock forward, firing due timers in order. */
  advance(ms: number): void {
    this.clock.advance(ms);
  }

  /** Messages of one type sent so far. */
  ofType<T extends WorkerMessage["type"]>(type: T): Extract<WorkerMessage, { type: T }>[] {
    return this.sent.filter((m) => m.type === type) as Extract<WorkerMessage, { type: T }>[];
  }
}

/** A valid `welcome` with overrides. */
export function welcome(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: "welcome",
    v: 1,
    worker: 3,
    generation: 7,
    harvest_interval_ms: 5000,
    heartbeat_ms: 15000,
    resource: { "service.name": "test" },
    ...overrides,
  };
}

/** Lets pending promise callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}
