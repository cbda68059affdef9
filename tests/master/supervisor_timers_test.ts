import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { GROUP_KILL_MS, PORT_RECHECK_MS, SERVICES_DELAY_MS } from "../../src/master/deadlines.ts";
import { type SupervisorAction, supervisorConfig } from "../../src/master/supervisor.ts";
import { typedConfig } from "../../src/config/config.ts";
import { brief, noticesOf, SupervisorDriver, timed } from "../_helpers/supervisor_driver.ts";

const SHARE = { port: 8000, listeners: [{ address: "0.0.0.0", family: 4 as const, uid: 0 }] };

/** The action types in a batch, notices and timers left out. */
function kinds(actions: SupervisorAction[]): string[] {
  return brief(actions).map((b) => b.split(":")[0]);
}

describe("Supervisor timers and decisions on the clock", () => {
  test("Supervisor.dispatch() starts the services 250 ms after the start when the workers take longer", () => {
    const d = new SupervisorDriver({ workers: 1 });
    const started = d.send({ type: "start" });
    assert.deepEqual(timed(started), [`timer:services@${SERVICES_DELAY_MS}`]);
    d.now = SERVICES_DELAY_MS - 1;
    assert.deepEqual(d.fire(), []);
    d.now = SERVICES_DELAY_MS;
    assert.deepEqual(kinds(d.fire()), ["startServices"]);
    // Booted later, and alone on its port: the services are not started twice.
    const w = d.current(1);
    assert.deepEqual(kinds(d.readyUp(w)), ["checkPort"]);
    assert.deepEqual(kinds(d.send({ type: "portChecked" })), ["whenReady"]);
  });

  test("Supervisor.dispatch() starts the services once every worker is ready and alone on its port", () => {
    const d = new SupervisorDriver({ workers: 2 });
    d.boot();
    assert.deepEqual(kinds(d.send({ type: "portChecked" })), ["startServices", "whenReady"]);
    d.now = SERVICES_DELAY_MS;
    assert.deepEqual(d.fire(), []);
  });

  test("Supervisor.dispatch() starts no services once the master stops", () => {
    const d = new SupervisorDriver({ workers: 1 });
    d.send({ type: "start" });
    d.send({ type: "signal", signal: "SIGTERM" });
    d.now = SERVICES_DELAY_MS;
    assert.deepEqual(kinds(d.fire()), []);
  });

  test("Supervisor.dispatch() looks at a shared port again after 250 ms, and stops with exit 2 if it still is", () => {
    const d = new SupervisorDriver({ workers: 1 });
    d.boot();
    const first = d.send({ type: "portChecked", shared: SHARE });
    assert.deepEqual(timed(first), [`timer:portRecheck@${PORT_RECHECK_MS}`]);
    assert.equal(d.sup.phase.name, "running");
    d.now = PORT_RECHECK_MS;
    assert.deepEqual(kinds(d.fire()), ["checkPort"]);
    const second = d.send({ type: "portChecked", shared: SHARE });
    assert.deepEqual(noticesOf(second, "portShared").map((n) => n.share), [SHARE]);
    assert.equal(d.sup.phase.name, "stopping");
    assert.deepEqual(kinds(second), ["flush"]);
    d.advance(300);
    assert.deepEqual(brief(d.exit(d.sup.workers()[0].worker, null, "SIGTERM")), [
      "forget:1",
      "exit:2",
    ]);
  });

  test("Supervisor.dispatch() takes a listener gone at the second look as a worker's own", () => {
    const d = new SupervisorDriver({ workers: 1 });
    d.boot();
    d.send({ type: "portChecked", shared: SHARE });
    d.now = PORT_RECHECK_MS;
    d.fire();
    assert.deepEqual(kinds(d.send({ type: "portChecked" })), ["startServices", "whenReady"]);
    assert.equal(d.sup.phase.name, "running");
  });

  test("Supervisor.dispatch() ends a process of several isolates that all said bye: TERM, then KILL after 1 s", () => {
    const d = new SupervisorDriver({ workers: 1 }, { isolates: 2 });
    const [w] = d.boot();
    d.now = 100;
    const bye = d.send({ type: "bye", workerId: w.id });
    assert.deepEqual(brief(bye), ["SIGTERM:1.1"]);
    assert.deepEqual(timed(bye), [`timer:kill@${100 + GROUP_KILL_MS}`]);
    d.now = 100 + GROUP_KILL_MS;
    assert.deepEqual(brief(d.fire()), ["SIGKILL:1.1"]);
  });

  test("Supervisor.dispatch() sends no KILL to a process of several isolates that exited in time", () => {
    const d = new SupervisorDriver({ workers: 1 }, { isolates: 2 });
    const [w] = d.boot();
    d.send({ type: "signal", signal: "SIGTERM" });
    d.send({ type: "bye", workerId: w.id });
    d.exit(w, 0);
    d.now = GROUP_KILL_MS;
    assert.deepEqual(brief(d.fire()), []);
  });

  test("Supervisor.dispatch() leaves a process of one isolate to exit by itself after bye", () => {
    const d = new SupervisorDriver({ workers: 1 });
    const [w] = d.boot();
    assert.deepEqual(
      d.send({ type: "bye", workerId: w.id }).filter((a) => a.type !== "notify"),
      [],
    );
  });

  test("Supervisor.dispatch() stops what an exited worker's app left in its group: TERM, then KILL after 1 s", () => {
    const d = new SupervisorDriver({ workers: 1 });
    const [w] = d.boot();
    d.now = 50;
    const gone = d.exit(w, 1);
    assert.deepEqual(timed(gone), ["group:SIGTERM:1.1", `timer:killGroup@${50 + GROUP_KILL_MS}`]);
    d.now = 50 + GROUP_KILL_MS;
    assert.deepEqual(timed(d.fire()), ["group:SIGKILL:1.1"]);
  });
});

describe("Supervisor heartbeats", () => {
  test("Supervisor.dispatch() asks each worker it spawns for the heartbeat its timeout needs, reloads included", () => {
    const d = new SupervisorDriver({ workers: 1, timeoutMs: 2_000, heartbeatMs: 500 });
    const [spawn] = d.send({ type: "start" }).filter((a) => a.type === "spawn");
    assert.deepEqual(spawn, { type: "spawn", worker: spawn.worker, heartbeatMs: 500 });
    d.readyUp(d.current(1));
    d.send({ type: "signal", signal: "SIGHUP" });
    const config = { workers: 1, once: false, timeoutMs: 0, gracefulMs: 30_000, heartbeatMs: 0 };
    const rolled = d.send({ type: "reloaded", config }).filter((a) => a.type === "spawn");
    assert.deepEqual(rolled.map((a) => a.type === "spawn" && a.heartbeatMs), [0]);
  });

  test("supervisorConfig() asks for a beat often enough that one late beat never trips the timeout", () => {
    const config = typedConfig({ timeout: 2, harvest_interval: 5 });
    assert.equal(supervisorConfig(config).heartbeatMs, 500);
    assert.equal(supervisorConfig(typedConfig({ timeout: 0 })).heartbeatMs, 0);
  });
});
