import { test } from "node:test";
import assert from "node:assert/strict";
import { Reporter } from "../../src/reporter/reporter.ts";
import { MAX_HARVEST_POINTS } from "../../src/reporter/delivery.ts";
import { timerPeriod } from "../../src/reporter/harvest_timer.ts";
import { LOOP_PROBE_IDLE_MS, LOOP_PROBE_MS } from "../../src/reporter/runtime_metrics.ts";
import { unrefTimer } from "../../src/runtime/timers.ts";
import type { ServedServer } from "../../src/runtime/serve.ts";
import type { HarvestMetric } from "../../src/protocol/messages.ts";
import { FakeHost, settle, welcome } from "../_helpers/fake_host.ts";

function started(host = new FakeHost()): { host: FakeHost; reporter: Reporter } {
  const reporter = new Reporter(host);
  reporter.start();
  return { host, reporter };
}

/** The first value of a counter in a harvest, whichever form it went in. */
function firstValue(m: HarvestMetric): number | undefined {
  return m.points[0]?.value ?? m.values?.[0];
}

function fakeServer(addr: string, log: string[]): ServedServer {
  return {
    addr,
    drain: () => {
      log.push(`drain ${addr}`);
      return Promise.resolve();
    },
    abort: () => void log.push(`abort ${addr}`),
  };
}

test("Reporter.start() sends hello and arms no timer", () => {
  const { host, reporter } = started();
  assert.deepEqual(host.sent, [{ type: "hello", v: 1, pid: 4242, runtime: "test/1.0.0" }]);
  assert.equal(host.timers.size, 0);
  assert.equal(reporter.stats().handshake, "hello");
  // The channel stays ref'd until welcome: it is the only thing keeping the
  // worker waiting for its master, and unref'ing it costs Bun milliseconds.
  assert.deepEqual(host.channelRefs, []);
});

test("Reporter.start() stays standalone when the master pid is not its parent", () => {
  const host = new FakeHost();
  host.vars.FORKLIFT_MASTER_PID = "999";
  const { reporter } = started(host);
  assert.deepEqual(host.sent, []);
  assert.equal(reporter.stats().handshake, "standalone");
});

test("Reporter.start() exits, never standalone, when its master died before it ran", () => {
  const host = new FakeHost();
  host.ppid = 1; // adopted by init: the master named in the environment is gone
  const { reporter } = started(host);
  assert.equal(host.exitCode, 0);
  assert.deepEqual(host.sent, []);
  assert.equal(reporter.stats().handshake, "stopped");
  // A master that is itself pid 1 (a container's entry point) is alive as the parent.
  const contained = new FakeHost();
  contained.ppid = 1;
  contained.vars.FORKLIFT_MASTER_PID = "1";
  assert.equal(started(contained).reporter.stats().handshake, "hello");
});

test("Reporter.start() never reads the environment without a channel", () => {
  const host = new FakeHost();
  host.channel = false;
  host.env = () => {
    throw new Error("env read");
  };
  const { reporter } = started(host);
  assert.equal(reporter.stats().handshake, "standalone");
});

test("Reporter.start() treats an unreadable environment as standalone", () => {
  const host = new FakeHost();
  host.env = () => undefined; // what readEnv() returns when Deno denies env access
  const { reporter } = started(host);
  assert.equal(reporter.stats().handshake, "standalone");
  assert.deepEqual(host.sent, []);
});

test("Reporter standalone arms one timer lazily on the first recording", () => {
  const host = new FakeHost();
  host.vars = {};
  const { reporter } = started(host);
  assert.equal(host.timers.size, 0);
  const hits = reporter.counter("hits");
  hits.add(1);
  hits.add(1);
  assert.equal(reporter.stats().timersArmed, 1);
  assert.equal(host.intervals().length, 1);
  assert.equal(host.intervals()[0].unrefed, true);
  assert.equal(host.intervals()[0].ms, 60_000);
});

test("Reporter welcome with runtime metrics arms one timer, paced by the event-loop probe while requests are in flight", async () => {
  const host = new FakeHost();
  host.runtimeMetrics = true;
  const { reporter } = started(host);
  const pace = () => host.intervals().map((t) => t.ms);
  host.deliver(welcome());
  assert.deepEqual(pace(), [LOOP_PROBE_IDLE_MS], "one timer after welcome, at the quiet pace");
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const handler = reporter.http.wrap(async (_req: Request) => {
    await gate;
    return new Response("ok");
  });
  const pending = handler(new Request("http://localhost/")) as Promise<Response>;
  host.advance(LOOP_PROBE_IDLE_MS);
  assert.deepEqual(pace(), [LOOP_PROBE_MS], "requests in flight: the same one timer, faster");
  host.advance(5000 - LOOP_PROBE_IDLE_MS);
  assert.equal(host.ofType("harvest").length, 1, "the harvest keeps the master's interval");
  release();
  await pending;
  host.advance(1000);
  assert.deepEqual(pace(), [LOOP_PROBE_IDLE_MS], "quiet again: back to the slow pace");
  const stats = reporter.stats();
  assert.deepEqual([stats.timersArmed, stats.timersActive, stats.periodMs], [1, 1, 5000]);
  const heartbeatOrHarvest = host.sent.filter((m) =>
    m.type === "harvest" || m.type === "heartbeat"
  );
  assert.ok(heartbeatOrHarvest.length <= 2, `${heartbeatOrHarvest.length} messages in 6.2 s`);
});

test("Reporter standalone hands each cut to the standalone exporter", () => {
  const host = new FakeHost();
  host.vars = {};
  const { reporter } = started(host);
  const cuts: number[] = [];
  reporter.setStandaloneExporter((cut) => cuts.push(cut.metrics[0]?.points[0]?.value ?? 0));
  reporter.counter("hits").add(4);
  host.advance(60_000);
  assert.deepEqual(cuts, [4]);
});

test("Reporter welcome arms exactly one unref'd timer and keeps pre-welcome data", () => {
  const { host, reporter } = started();
  const hits = reporter.counter("hits");
  hits.add(5, { at: "import" });
  assert.equal(host.timers.size, 0, "no timer before welcome under forklift");
  host.deliver(welcome());
  const stats = reporter.stats();
  assert.equal(stats.handshake, "welcomed");
  assert.equal(stats.worker, 3);
  assert.equal(stats.generation, 7);
  assert.equal(stats.timersArmed, 1);
  assert.equal(stats.periodMs, 5000);
  assert.equal(host.intervals().length, 1);
  assert.equal(host.intervals()[0].unrefed, true);
  assert.deepEqual(host.channelRefs, [false], "the channel is unref'd on welcome");
  host.advance(5000);
  const [harvest] = host.ofType("harvest");
  assert.equal(harvest.seq, 1);
  assert.deepEqual(harvest.metrics, [
    { name: "hits", kind: "counter", points: [{ id: 0, attributes: { at: "import" }, value: 5 }] },
  ]);
});

test("Reporter harvest sends a series' attributes until a harvest that carried them is acked", () => {
  const { host, reporter } = started();
  const hits = reporter.counter("hits");
  host.deliver(welcome({ heartbeat_ms: 0 }));
  hits.add(1, { route: "/a" });
  host.advance(5000); // seq 1 defines id 0
  host.advance(5000);
  host.advance(5000); // seq 1 resent after two intervals: still the definition
  host.deliver({ type: "ack", v: 1, seq: 1 });
  hits.add(2, { route: "/a" });
  hits.add(1, { route: "/b" });
  host.advance(5000); // seq 2: /a by id alone, /b defined
  const metrics = host.ofType("harvest").map((h) => h.metrics[0]);
  const defined = { name: "hits", kind: "counter" };
  assert.deepEqual(metrics, [
    { ...defined, points: [{ id: 0, attributes: { route: "/a" }, value: 1 }] },
    { ...defined, points: [{ id: 0, attributes: { route: "/a" }, value: 1 }] },
    // Known series go as two columns: ids and values.
    {
      ...defined,
      points: [{ id: 1, attributes: { route: "/b" }, value: 1 }],
      ids: [0],
      values: [2],
    },
  ]);
});

test("Reporter harvest acknowledges a cut only when its last message is acked", () => {
  const { host, reporter } = started();
  host.deliver(welcome({ heartbeat_ms: 0 }));
  const c = reporter.counter("c");
  const d = reporter.counter("d");
  // c's full 2,000 series (the overflow series one of them) and one of d's: one point too many.
  const record = () => {
    for (let i = 0; i < MAX_HARVEST_POINTS; i++) c.add(1, { i });
    d.add(1);
  };
  record();
  host.advance(5000); // seq 1 and 2 define every series
  host.deliver({ type: "ack", v: 1, seq: 1 });
  record();
  reporter.harvest(true); // seq 2 resent, then seq 3 and 4: seq 2 is not acked, so definitions again
  host.deliver({ type: "ack", v: 1, seq: 4 });
  record();
  host.advance(5000); // seq 5 and 6: by id alone
  const harvests = host.ofType("harvest");
  assert.deepEqual(harvests.map((h) => h.seq), [1, 2, 2, 3, 4, 5, 6]);
  const defined = harvests.map((h) =>
    h.metrics[0].points.filter((p) => p.attributes !== undefined).length
  );
  assert.deepEqual(defined, [2000, 1, 1, 2000, 1, 0, 0]);
});

test("Reporter welcome re-binds an armed timer to the master's interval", () => {
  const host = new FakeHost();
  const { reporter } = started(host);
  host.deliver(welcome());
  host.deliver(welcome({ harvest_interval_ms: 2000, heartbeat_ms: 0 }));
  assert.equal(reporter.stats().timersActive, 1);
  assert.equal(host.intervals().length, 1);
  assert.equal(host.intervals()[0].ms, 2000);
});

test("Reporter harvest drops data only on ack and resends an unacked one with its own seq", () => {
  const { host, reporter } = started();
  const hits = reporter.counter("hits");
  host.deliver(welcome({ heartbeat_ms: 0 }));
  hits.add(1);
  host.advance(5000);
  host.deliver({ type: "ack", v: 1, seq: 1 });
  hits.add(2);
  host.advance(5000); // seq 2, not acked yet
  hits.add(3);
  host.advance(5000); // one interval: still waiting
  assert.deepEqual(host.ofType("harvest").map((h) => h.seq), [1, 2]);
  host.advance(5000); // two intervals: seq 2 again, unchanged, never merged with newer data
  assert.deepEqual(host.ofType("harvest").map((h) => h.seq), [1, 2, 2]);
  host.deliver({ type: "ack", v: 1, seq: 2 });
  host.advance(5000); // seq 3 carries what was recorded meanwhile
  const harvests = host.ofType("harvest");
  assert.deepEqual(harvests.map((h) => h.seq), [1, 2, 2, 3]);
  assert.deepEqual(harvests.map((h) => firstValue(h.metrics[0])), [1, 2, 2, 3]);
  host.deliver({ type: "ack", v: 1, seq: 3 });
  host.advance(5000);
  assert.equal(host.ofType("harvest").length, 5);
  assert.deepEqual(host.ofType("harvest")[4].metrics, []);
  assert.equal(reporter.stats().acked, 3);
});

test("Reporter harvest splits a big cut into messages of at most MAX_HARVEST_POINTS points", () => {
  const { host, reporter } = started();
  host.deliver(welcome({ heartbeat_ms: 0 }));
  // Three instruments of 1,500 series each (below the per-instrument limit) and one more point.
  for (const name of ["a", "b", "c"]) {
    const c = reporter.counter(name);
    for (let i = 0; i < 1500; i++) c.add(1, { i });
  }
  reporter.counter("other").add(1);
  reporter.counter("a").add(-1); // one dropped point, reported once
  host.advance(5000);
  const harvests = host.ofType("harvest");
  assert.deepEqual(harvests.map((h) => h.seq), [1, 2, 3]);
  const points = harvests.map((h) =>
    h.metrics.reduce((n, m) => n + m.points.length + (m.ids?.length ?? 0), 0)
  );
  assert.equal(MAX_HARVEST_POINTS, 2000);
  assert.deepEqual(points, [2000, 2000, 501]);
  assert.deepEqual(harvests.map((h) => h.dropped), [1, 0, 0]);
  host.deliver({ type: "ack", v: 1, seq: 3 });
  host.advance(5000);
  // The ack of the last seq acks them all: the next harvest is new, nothing is resent.
  assert.deepEqual(host.ofType("harvest").map((h) => h.seq), [1, 2, 3, 4]);
});

test("Reporter harvest waits for a recent unacked harvest instead of merging it", async () => {
  const { host, reporter } = started();
  const hits = reporter.counter("hits");
  host.deliver(welcome({ heartbeat_ms: 0 }));
  hits.add(1);
  host.advance(4000);
  host.deliver({ type: "flush", v: 1 });
  await settle();
  assert.equal(host.ofType("harvest").length, 1);
  hits.add(1);
  host.advance(1000); // the regular tick, 1 s after the flush's harvest: too early to merge
  assert.equal(host.ofType("harvest").length, 1);
  host.deliver({ type: "ack", v: 1, seq: 1 });
  host.advance(5000);
  const harvests = host.ofType("harvest");
  assert.equal(harvests.length, 2);
  assert.equal(firstValue(harvests[1].metrics[0]), 1);
});

test("Reporter harvest carries dropped points and cumulative requests", async () => {
  const { host, reporter } = started();
  host.deliver(welcome({ heartbeat_ms: 0 }));
  reporter.counter("hits").add(-1);
  const handler = reporter.instrument((_req: Request) => new Response("ok"));
  await handler(new Request("http://localhost/"));
  host.advance(5000);
  const [harvest] = host.ofType("harvest");
  assert.equal(harvest.dropped, 1);
  assert.equal(harvest.requests, 1);
});

test("Reporter heartbeat goes out every heartbeat_ms on the same timer", () => {
  const { host, reporter } = started();
  host.deliver(welcome({ harvest_interval_ms: 10_000, heartbeat_ms: 2000 }));
  assert.equal(reporter.stats().periodMs, 2000);
  host.advance(10_000);
  assert.equal(host.ofType("heartbeat").length, 4);
  assert.equal(host.ofType("harvest").length, 1);
  assert.equal(host.intervals().length, 1);
});

test("Reporter.receive() counts invalid messages and never throws", () => {
  const { host, reporter } = started();
  for (const raw of [null, 42, "x", { type: "welcome" }, { type: "nope", v: 1 }, { v: 2 }]) {
    host.deliver(raw);
  }
  assert.equal(reporter.stats().invalidMessages, 6);
  assert.equal(reporter.stats().handshake, "hello");
});

test("Reporter.afterWelcome() runs callbacks once, after welcome", () => {
  const { host, reporter } = started();
  const calls: string[] = [];
  reporter.afterWelcome(() => void calls.push("early"));
  host.runTicks();
  assert.equal(calls.length, 0);
  host.deliver(welcome());
  host.deliver(welcome());
  assert.deepEqual(calls, ["early"]);
  reporter.afterWelcome(() => void calls.push("late"));
  host.runTicks();
  assert.deepEqual(calls, ["early", "late"]);
  assert.equal(reporter.stats().postForkRuns, 1);
});

test("Reporter.afterWelcome() runs on the next tick when standalone", () => {
  const host = new FakeHost();
  host.vars = {};
  const { reporter } = started(host);
  const calls: number[] = [];
  reporter.afterWelcome(() => void calls.push(1));
  assert.equal(calls.length, 0);
  host.runTicks();
  assert.deepEqual(calls, [1]);
  assert.equal(host.timers.size, 0);
});

test("Reporter.afterWelcome() survives a throwing callback", () => {
  const { host, reporter } = started();
  const calls: number[] = [];
  const original = console.error;
  console.error = () => {};
  try {
    reporter.afterWelcome(() => {
      throw new Error("boom");
    });
    reporter.afterWelcome(() => void calls.push(2));
    host.deliver(welcome());
  } finally {
    console.error = original;
  }
  assert.deepEqual(calls, [2]);
});

test("Reporter.listening() sends ready after welcome, once", () => {
  const { host, reporter } = started();
  const log: string[] = [];
  reporter.listening(fakeServer("0.0.0.0:8000", log));
  assert.equal(host.ofType("ready").length, 0);
  host.deliver(welcome());
  reporter.listening(fakeServer("0.0.0.0:9000", log));
  assert.deepEqual(host.ofType("ready"), [{ type: "ready", v: 1, addr: "0.0.0.0:8000" }]);
  assert.equal(reporter.stats().servers, 2);
});

test("Reporter.serveHooks() forces reusePort under forklift when sharing is possible, even for one worker", () => {
  const standalone = new FakeHost();
  delete standalone.vars.FORKLIFT_MASTER_PID;
  const alone = new Reporter(standalone);
  alone.start();
  assert.equal(alone.serveHooks().reusePort(), false);
  const host = new FakeHost();
  host.vars.FORKLIFT_WORKERS = "1";
  const one = new Reporter(host);
  one.start({ sharePort: true });
  assert.equal(one.serveHooks().reusePort(), true);
  host.deliver(welcome({ reuse_port: false }));
  assert.equal(one.serveHooks().reusePort(), false);
});

test("Reporter shutdown drains, sends a final harvest, waits for its ack, says bye, exits 0", async () => {
  const { host, reporter } = started();
  const log: string[] = [];
  reporter.listening(fakeServer("0.0.0.0:8000", log));
  host.deliver(welcome({ heartbeat_ms: 0 }));
  reporter.counter("hits").add(2);
  host.advance(5000); // harvest 1, left unacked
  reporter.counter("hits").add(3);
  host.deliver({ type: "shutdown", v: 1, graceful_ms: 3000 });
  await settle();
  assert.deepEqual(log, ["drain 0.0.0.0:8000"]);
  assert.equal(host.intervals().length, 0, "the harvest timer is disarmed");
  host.advance(1000); // harvest 1 is never acked: it goes again, as seq 1, before seq 2
  await settle();
  const [, resent, final] = host.ofType("harvest");
  assert.deepEqual([resent.seq, resent.metrics[0].points[0].value], [1, 2]);
  assert.equal(final.seq, 2);
  assert.equal(final.metrics[0].points[0].value, 3);
  assert.equal(host.exitCode, undefined, "waits for the ack");
  host.deliver({ type: "ack", v: 1, seq: 2 });
  await settle();
  assert.deepEqual(host.sent.at(-1), { type: "bye", v: 1, seq: 2 });
  assert.equal(host.exitCode, 0);
  assert.equal(host.channelRefs.at(-1), true);
});

test("Reporter disconnect drains and exits without a harvest", async () => {
  const { host, reporter } = started();
  const log: string[] = [];
  reporter.listening(fakeServer("0.0.0.0:8000", log));
  host.deliver(welcome());
  host.disconnect();
  await settle();
  assert.deepEqual(log, ["drain 0.0.0.0:8000"]);
  assert.equal(host.exitCode, 0);
  assert.equal(host.ofType("harvest").length, 0);
});

test("Reporter shutdown aborts servers that outlive graceful_ms", async () => {
  const { host, reporter } = started();
  const log: string[] = [];
  reporter.listening({
    addr: "0.0.0.0:1",
    drain: () => new Promise<void>(() => {}),
    abort: () => void log.push("abort"),
  });
  host.deliver(welcome());
  host.deliver({ type: "shutdown", v: 1, graceful_ms: 200 });
  host.advance(200);
  await settle();
  assert.deepEqual(log, ["abort"]);
  host.advance(1000);
  await settle();
  assert.equal(host.exitCode, 0);
});

test("Reporter shutdown before welcome still hands over pre-welcome data", async () => {
  const { host, reporter } = started();
  reporter.counter("early").add(1);
  host.deliver({ type: "shutdown", v: 1, graceful_ms: 1000 });
  await settle();
  const [harvest] = host.ofType("harvest");
  assert.equal(harvest.metrics[0].points[0].value, 1);
  host.deliver({ type: "ack", v: 1, seq: harvest.seq });
  await settle();
  assert.deepEqual(host.sent.at(-1), { type: "bye", v: 1, seq: harvest.seq });
  assert.equal(host.exitCode, 0);
  assert.equal(host.intervals().length, 0);
});

test("timerPeriod() picks one period for both schedules", () => {
  assert.equal(timerPeriod(5000, 15000), 5000);
  assert.equal(timerPeriod(5000, 0), 5000);
  assert.equal(timerPeriod(10_000, 4000), 2000);
  assert.equal(timerPeriod(5001, 7000), 5001);
});

test("unrefTimer() unrefs object handles and passes numbers through", () => {
  let unrefs = 0;
  const handle = { unref: () => void unrefs++ };
  assert.equal(unrefTimer(handle), handle);
  assert.equal(unrefs, 1);
  assert.equal(unrefTimer(7), 7);
});
