import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { loadSettings, type ResolvedSettings } from "../../src/config/load.ts";
import { recordingLog } from "../_helpers/recording_log.ts";
import { Arbiter } from "../../src/master/arbiter.ts";
import { FakeClock } from "../_helpers/fake_clock.ts";
import type { Hooks } from "../../src/master/hooks.ts";
import type { Spawned, SpawnHow, WorkerSpawner } from "../../src/master/spawner.ts";
import type { WorkerRef } from "../../src/master/supervisor.ts";
import {
  MasterTelemetry,
  type SupervisionSnapshot,
  type Telemetry,
} from "../../src/master/telemetry.ts";
import { typedConfig } from "../../src/config/config.ts";
import { type WorkerEvents, WorkerHandle } from "../../src/master/worker_handle.ts";
import type { WorkerProcessEvents } from "../../src/runtime/spawn.ts";
import type { SignalName } from "../../src/runtime/runtime.ts";

/** The fake clock, letting the arbiter's loop run after each timer it fires. */
class SettlingClock extends FakeClock {
  override advance(ms: number): Promise<void> {
    return this.advanceSettling(ms, settle);
  }
}

/** Lets queued promise callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 0));
}

/** A fake worker process: records what the master sent it and lets the test speak for it. */
interface FakeWorker {
  ref: WorkerRef;
  /** The heartbeat interval the master asked of it. */
  heartbeatMs: number;
  events: WorkerProcessEvents;
  sent: unknown[];
  signals: string[];
  /** Signals to what the worker's app left in its process group. */
  groupSignals: string[];
}

class FakeSpawner implements WorkerSpawner {
  readonly argv = ["app"];
  workers: FakeWorker[] = [];
  /** Messages of the errors the next spawns throw (undefined: succeed). */
  failures: Array<string | undefined> = [];
  closed = false;
  async prepare(): Promise<void> {}
  configure(): void {}
  spawn(ref: WorkerRef, how: SpawnHow, events: WorkerEvents): Spawned {
    const failure = this.failures.shift();
    if (failure !== undefined) throw new Error(failure);
    const fake: FakeWorker = {
      ref,
      heartbeatMs: how.heartbeatMs,
      events: undefined!,
      sent: [],
      signals: [],
      groupSignals: [],
    };
    const handle = new WorkerHandle(
      (events) => {
        fake.events = events;
        return {
          pid: 50_000 + ref.id,
          connected: true,
          send: (m) => (fake.sent.push(m), true),
          kill: (s) => void fake.signals.push(s),
          killGroup: (s) => void fake.groupSignals.push(s),
        };
      },
      ref,
      {
        events,
        welcome: (h) => ({
          worker: h.slot,
          generation: h.generation,
          harvest_interval_ms: 1000,
          heartbeat_ms: how.heartbeatMs,
          resource: {},
        }),
        output: { prefix: () => false, json: () => false },
        write: { stdout: () => {}, stderr: () => {} },
      },
    );
    this.workers.push(fake);
    return { handle, expectsHello: false, requestLimit: 0, isolates: 1 };
  }
  foreignListeners(): [] {
    return [];
  }
  sweep(): Promise<string[]> {
    return Promise.resolve([]);
  }
  close(): void {
    this.closed = true;
  }
}

class FakeTelemetry implements Telemetry {
  harvests = 0;
  forgotten: number[] = [];
  constructor(readonly snapshot: () => SupervisionSnapshot) {}
  harvest(): void {
    this.harvests++;
  }
  invalid(): void {}
  forget(worker: { slot: number }): void {
    this.forgotten.push(worker.slot);
  }
  serve(): Promise<{ host: string; port: number }> {
    return Promise.resolve({ host: "127.0.0.1", port: 1 });
  }
  checkBind(): Promise<void> {
    return Promise.resolve();
  }
  startExport(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function settings(values: Record<string, string>): ResolvedSettings {
  return loadSettings({
    env: {},
    flags: new Map(Object.entries(values).map(([k, raw]) => [k, { raw, flag: `--${k}` }])),
  });
}

function harness(values: Record<string, string>, hooks: Hooks = {}) {
  const clock = new SettlingClock();
  const spawner = new FakeSpawner();
  const listeners = new Map<SignalName, () => void>();
  let telemetry: FakeTelemetry | undefined;
  const calls: string[] = [];
  const log = recordingLog();
  const s = settings({ metrics_bind: "off", ...values });
  const arbiter = new Arbiter({
    runtime: {
      onSignal: (signal, fn) => (listeners.set(signal, fn), () => listeners.delete(signal)),
      releaseStartupMemory: () => Promise.resolve(),
      env: () => ({}),
    },
    settings: s,
    reloadSettings: () => s,
    spawner,
    telemetry: (snapshot) => (telemetry = new FakeTelemetry(snapshot)),
    clock,
    hooks: {
      ...hooks,
      childExit: (w) => void calls.push(`childExit ${w.slot}.${w.generation} ${w.reason}`),
      onExit: () => void calls.push("onExit"),
    },
    log,
  });
  const raise = (signal: SignalName) => listeners.get(signal)!();
  return { arbiter, clock, spawner, raise, calls, log, telemetry: () => telemetry!, listeners };
}

function say(w: FakeWorker, message: Record<string, unknown>): void {
  w.events.message({ v: 1, ...message }, 0);
}

/** INT, then the worker's exit at its SIGTERM: the arbiter must end with 0. */
async function quickStop(h: ReturnType<typeof harness>, w: FakeWorker, done: Promise<number>) {
  h.raise("SIGINT");
  await h.clock.advance(300);
  w.events.exit(null, "SIGTERM");
  assert.equal(await done, 0);
}

/** Runs the arbiter until every worker has said hello and ready; resolves to run()'s promise. */
async function runReady(h: ReturnType<typeof harness>): Promise<{ done: Promise<number> }> {
  const done = h.arbiter.run();
  await h.clock.advance(0);
  for (const w of h.spawner.workers) {
    say(w, { type: "hello", pid: 1, runtime: "test/1" });
    say(w, { type: "ready", addr: "127.0.0.1:1" });
  }
  await h.clock.advance(0);
  return { done };
}

describe("Arbiter with fake ports", () => {
  test("Arbiter.run() takes one Ctrl-C delivered twice (deno task forwards it) as one SIGINT", async () => {
    const h = harness({ workers: "1" });
    const { done } = await runReady(h);
    const [w] = h.spawner.workers;
    h.raise("SIGINT");
    h.raise("SIGINT");
    await h.clock.advance(50);
    h.raise("SIGINT");
    await h.clock.advance(0);
    assert.equal(h.log.lines.filter((l) => l.includes("Received SIGINT")).length, 1);
    await h.clock.advance(300);
    w.events.exit(null, "SIGTERM");
    assert.equal(await done, 0);
  });

  test("Arbiter.run() stops cleanly with exit 3 when a spawn throws at boot", async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-arbiter-`);
    const pidFile = `${dir}/forklift.pid`;
    const h = harness({ workers: "2", pid_file: pidFile });
    h.spawner.failures = ["spawn EAGAIN"];
    try {
      const done = h.arbiter.run();
      await h.clock.advance(0);
      assert.equal(await done, 3);
      assert.equal(h.spawner.workers.length, 0, "a worker started after the stop was decided");
      assert.equal(existsSync(pidFile), false, "pid file left behind");
      assert.equal(h.spawner.closed, true);
      assert.equal(h.listeners.size, 0, "signal listeners left installed");
      assert.deepEqual(h.calls, ["onExit"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("Arbiter.run() drains reporting workers on TERM and exits 0 once they are gone", async () => {
    const h = harness({ workers: "2", graceful_timeout: "5" });
    const { done } = await runReady(h);
    const status = h.telemetry().snapshot();
    assert.deepEqual(status.workers.map((w) => w.view.phase), ["ready", "ready"]);
    assert.equal(status.readyWorkers, 2);
    h.raise("SIGTERM");
    await h.clock.advance(0);
    for (const w of h.spawner.workers) {
      assert.deepEqual(w.sent.map((m) => (m as { type: string }).type), ["welcome", "shutdown"]);
      assert.deepEqual(w.signals, []);
    }
    assert.deepEqual(
      h.telemetry().snapshot().workers.map((w) => w.view.transitions.map((t) => t.state)),
      [["starting", "hello", "ready", "stopping"], ["starting", "hello", "ready", "stopping"]],
    );
    h.spawner.workers[0].events.exit(0, null);
    await h.clock.advance(5_999);
    assert.deepEqual(h.spawner.workers[1].signals, []);
    await h.clock.advance(1);
    assert.deepEqual(h.spawner.workers[1].signals, ["SIGKILL"]);
    h.spawner.workers[1].events.exit(null, "SIGKILL");
    assert.equal(await done, 0);
    assert.deepEqual(h.telemetry().forgotten, [1, 2]);
  });

  test("Arbiter's /status lists each worker field for field, its phases and times from the supervisor", async () => {
    const h = harness({ workers: "1" });
    const { done } = await runReady(h);
    const [w] = h.spawner.workers;
    say(w, { type: "heartbeat", requests: 7 });
    await h.clock.advance(0);
    const status = new MasterTelemetry({
      serviceName: "api",
      config: typedConfig({}),
      log: h.log,
      snapshot: h.telemetry().snapshot,
      onError: () => {},
    }).status();
    const [worker] = status.workers;
    assert.deepEqual(Object.keys(worker), [
      "slot",
      "pid",
      "generation",
      "state",
      "spawned_at",
      "ready_at",
      "handshake_ms",
      "last_harvest_at",
      "last_seen_at",
      "requests",
      "restarts",
      "addr",
      "runtime",
      "transitions",
      "cpu",
      "memory_bytes",
      "heap_used_bytes",
      "heap_limit_bytes",
      "loop_delay_p99_seconds",
      "loop_delay_max_seconds",
      "active_requests",
      "request_duration",
    ]);
    assert.equal(worker.state, "ready");
    assert.equal(worker.pid, 50_001);
    assert.equal(worker.requests, 7);
    assert.equal(worker.addr, "127.0.0.1:1");
    assert.equal(worker.runtime, "test/1");
    assert.deepEqual(worker.transitions?.map((t) => t.state), ["starting", "hello", "ready"]);
    assert.equal(worker.ready_at, worker.transitions?.[2].at);
    assert.ok(Date.parse(worker.ready_at!) >= Date.parse(worker.spawned_at) - 1_000);
    assert.equal(status.phase, "running");
    assert.equal(status.totals.workers, 1);
    await quickStop(h, w, done);
  });

  test("Arbiter.run() stops the worker already running when a later spawn throws", async () => {
    const h = harness({ workers: "2" });
    h.spawner.failures = [undefined, "spawn EMFILE"];
    const done = h.arbiter.run();
    await h.clock.advance(0);
    const [first] = h.spawner.workers;
    assert.equal(h.spawner.workers.length, 1);
    await h.clock.advance(300);
    assert.deepEqual(first.signals, ["SIGTERM"]);
    first.events.exit(null, "SIGTERM");
    assert.equal(await done, 3);
    assert.deepEqual(h.calls, ["childExit 1.1 stop", "onExit"]);
  });

  test("Arbiter.run() hears a TERM raised during a preFork hook before it spawns the next worker", async () => {
    let raise = (_: SignalName) => {};
    const h = harness({ workers: "3" }, {
      preFork: (w) => void (w.slot === 1 && raise("SIGTERM")),
    });
    raise = h.raise;
    const done = h.arbiter.run();
    await h.clock.advance(0);
    // The spawn under way is carried out; the stop is decided before any other.
    assert.deepEqual(h.spawner.workers.map((w) => w.ref.slot), [1]);
    const [w] = h.spawner.workers;
    assert.deepEqual(w.signals, ["SIGTERM"]);
    w.events.exit(null, "SIGTERM");
    assert.equal(await done, 0);
  });

  test("Arbiter.run() gives each worker the heartbeat interval the supervisor asks for", async () => {
    const h = harness({ workers: "1", timeout: "2" });
    const { done } = await runReady(h);
    const [w] = h.spawner.workers;
    assert.equal(w.heartbeatMs, 500);
    const welcome = w.sent.find((m) => (m as { type: string }).type === "welcome");
    assert.equal((welcome as { heartbeat_ms: number }).heartbeat_ms, 500);
    await quickStop(h, w, done);
  });

  test("Arbiter.run() stops what an exited worker's app left behind: TERM, KILL 1 s later, even once the master is done", async () => {
    const h = harness({ workers: "1" });
    const { done } = await runReady(h);
    const [w] = h.spawner.workers;
    h.raise("SIGTERM");
    await h.clock.advance(0);
    w.events.exit(0, null);
    assert.equal(await done, 0);
    assert.deepEqual(w.groupSignals, ["SIGTERM"]);
    await h.clock.advance(1_000);
    assert.deepEqual(w.groupSignals, ["SIGTERM", "SIGKILL"]);
  });

  test("Arbiter.run() calls childExit before the replacement is spawned", async () => {
    const h = harness({ workers: "1" });
    const { done } = await runReady(h);
    const [w] = h.spawner.workers;
    const spawn = h.spawner.spawn.bind(h.spawner);
    h.spawner.spawn = (ref, how, events) => {
      h.calls.push(`spawn ${ref.slot}.${ref.generation}`);
      return spawn(ref, how, events);
    };
    const calls = h.calls.length;
    w.events.exit(1, null);
    await h.clock.advance(0);
    assert.deepEqual(h.calls.slice(calls), ["childExit 1.1 undefined", "spawn 1.2"]);
    await quickStop(h, h.spawner.workers[1], done);
  });

  test("Arbiter merges each harvest seq of a worker once, however often it is resent", async () => {
    const h = harness({ workers: "1" });
    const { done } = await runReady(h);
    const [w] = h.spawner.workers;
    const harvest = (seq: number) => ({
      type: "harvest",
      seq,
      metrics: [{ name: "hits", kind: "counter", points: [{ attributes: {}, value: 10 }] }],
    });
    say(w, harvest(1));
    say(w, harvest(1)); // the ack came late: the worker sent seq 1 again
    say(w, harvest(2));
    say(w, harvest(1));
    await h.clock.advance(0);
    assert.equal(h.telemetry().harvests, 2);
    const acks = w.sent.filter((m) => (m as { type: string }).type === "ack");
    assert.deepEqual(acks.map((m) => (m as { seq: number }).seq), [1, 1, 2, 1]);
    await quickStop(h, w, done);
  });

  test("Arbiter logs invalid messages once per worker every 10 s, cut short", async () => {
    const h = harness({ workers: "1" });
    const { done } = await runReady(h);
    const [w] = h.spawner.workers;
    const huge = "x".repeat(1_000_000);
    for (let i = 0; i < 50; i++) say(w, { type: "nope", v: huge });
    await h.clock.advance(0);
    let warnings = h.log.lines.filter((l) => l.includes("invalid message"));
    assert.equal(warnings.length, 1);
    assert.ok(warnings[0].length < 400, `${warnings[0].length} characters`);
    await h.clock.advance(10_000);
    say(w, { type: "nope" });
    await h.clock.advance(0);
    warnings = h.log.lines.filter((l) => l.includes("invalid message"));
    assert.equal(warnings.length, 2);
    assert.match(warnings[1], /and 49 more since the last report/);
    await quickStop(h, w, done);
  });

  test("Arbiter.run() merges harvests and acks them, and respawns a crashed worker", async () => {
    const h = harness({ workers: "1" });
    const { done } = await runReady(h);
    const [w] = h.spawner.workers;
    say(w, { type: "harvest", seq: 1, metrics: [] });
    await h.clock.advance(0);
    assert.equal(h.telemetry().harvests, 1);
    assert.deepEqual(w.sent.at(-1), { type: "ack", v: 1, seq: 1 });
    w.events.exit(1, null);
    await h.clock.advance(0);
    assert.equal(h.spawner.workers.length, 2);
    assert.equal(h.spawner.workers[1].ref.generation, 2);
    assert.equal(h.telemetry().snapshot().restarts.crash, 1);
    h.raise("SIGINT");
    await h.clock.advance(300);
    assert.deepEqual(h.spawner.workers[1].signals, ["SIGTERM"]);
    h.spawner.workers[1].events.exit(null, "SIGTERM");
    assert.equal(await done, 0);
    assert.equal(process.exitCode ?? 0, 0);
  });

  test("Arbiter judges a worker silent only once the messages already queued are taken", async () => {
    const h = harness({ workers: "3", timeout: "2" });
    const { done } = await runReady(h);
    const signals = () => h.spawner.workers.map((w) => w.signals.join());
    // Every heartbeat deadline passes at once, and each worker's heartbeat is queued meanwhile.
    h.clock.time += 2_500;
    for (const w of h.spawner.workers) say(w, { type: "heartbeat" });
    await h.clock.advance(0);
    assert.deepEqual(signals(), ["", "", ""]);
    assert.equal(h.log.lines.filter((l) => l.includes("sent nothing")).length, 0);
    // Real silence is still judged.
    await h.clock.advance(2_001);
    assert.deepEqual(signals(), ["SIGTERM", "SIGTERM", "SIGTERM"]);
    h.raise("SIGINT");
    await h.clock.advance(300);
    for (const w of h.spawner.workers) w.events.exit(null, "SIGTERM");
    assert.equal(await done, 0);
  });

  test("Arbiter takes a flood of one worker's messages as one event, in order with the others", async () => {
    const h = harness({ workers: "2", timeout: "2" });
    const { done } = await runReady(h);
    const [flooder, honest] = h.spawner.workers;
    h.clock.time += 1_500;
    for (let i = 0; i < 100_000; i++) say(flooder, { type: "heartbeat", requests: i });
    say(honest, { type: "heartbeat" });
    for (let i = 0; i < 10_000; i++) say(flooder, { type: "ready", addr: "127.0.0.1:1" });
    h.clock.time += 1_000;
    await h.clock.advance(0);
    assert.deepEqual(h.spawner.workers.map((w) => w.signals.join()), ["", ""]);
    const [view] = h.telemetry().snapshot().workers;
    assert.equal(view.handle.requests, 99_999);
    assert.equal(
      h.log.lines.filter((l) => /generation \d+\) ready/.test(l)).length,
      2,
      h.log.lines.join("\n"),
    );
    await quickStopAll(h, done);
  });
});

/** INT, then every worker's exit at its SIGTERM: the arbiter must end with 0. */
async function quickStopAll(h: ReturnType<typeof harness>, done: Promise<number>) {
  h.raise("SIGINT");
  await h.clock.advance(300);
  for (const w of h.spawner.workers) w.events.exit(null, "SIGTERM");
  assert.equal(await done, 0);
}
