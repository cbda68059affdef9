import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { KILL_GRACE_MS, MANAGED_READY_MS, UNMANAGED_READY_MS } from "../../src/master/deadlines.ts";
import { backoffDelay, MAX_BOOT_FAILURES } from "../../src/master/restart_policy.ts";
import { exitStatus, signalNumber } from "../../src/master/exit_status.ts";
import {
  brief,
  noticesIn,
  noticesOf,
  spawnsIn,
  SupervisorDriver,
} from "../_helpers/supervisor_driver.ts";

describe("Supervisor start and boot", () => {
  test("Supervisor.dispatch() spawns one worker per slot at start, generation 1", () => {
    const d = new SupervisorDriver({ workers: 3 });
    const out = d.send({ type: "start" });
    assert.deepEqual(brief(out), ["spawn:1.1", "spawn:2.1", "spawn:3.1"]);
    assert.equal(d.sup.phase.name, "booting");
  });

  test("Supervisor.dispatch() says booted once, when every slot is ready", () => {
    const d = new SupervisorDriver({ workers: 2 });
    const [a, b] = spawnsIn(d.send({ type: "start" }));
    assert.deepEqual(noticesOf(d.readyUp(a), "booted"), []);
    assert.deepEqual(noticesOf(d.readyUp(b), "booted"), [{ kind: "booted", workers: 2 }]);
    assert.equal(d.sup.phase.name, "running");
    assert.equal(d.sup.readyCount, 2);
  });

  test("Supervisor.dispatch() stops with exit 3 when a worker fails to boot, and spawns no more", () => {
    const d = new SupervisorDriver({ workers: 2 });
    const [a, b] = spawnsIn(d.send({ type: "start" }));
    const out = d.exit(a, 1);
    const failed = noticesOf(out, "bootFailed");
    assert.deepEqual(failed.map((n) => n.then), [{ action: "stop" }]);
    assert.deepEqual(failed[0].cause, { exit: { code: 1, signal: null } });
    assert.deepEqual(spawnsIn(out), []);
    assert.equal(d.sup.phase.name, "stopping");
    // The other booting worker is stopped quickly, then the master exits 3.
    assert.deepEqual(brief(d.advance(300)), ["SIGTERM:2.1"]);
    assert.deepEqual(brief(d.exit(b, null, "SIGTERM")), ["forget:2", "exit:3"]);
  });

  test("Supervisor.dispatch() takes a spawn that throws at boot as a boot failure (exit 3)", () => {
    const d = new SupervisorDriver({ workers: 2 }, { failures: ["EAGAIN: no processes"] });
    const out = d.send({ type: "start" });
    const failed = noticesOf(out, "bootFailed");
    assert.equal(failed.length, 1);
    assert.deepEqual(failed[0].cause, { spawn: "EAGAIN: no processes" });
    assert.deepEqual(failed[0].then, { action: "stop" });
    // Slot 2 waits for slot 1's outcome, and gets no process: nothing is left, the master exits 3.
    assert.deepEqual(brief(out), ["spawn:1.1", "forget:1", "exit:3"]);
    assert.deepEqual(d.sup.restarts, {
      crash: 0,
      timeout: 0,
      reload: 0,
      max_requests: 0,
      memory: 0,
      scale: 0,
    });
  });

  test("Supervisor.dispatch() exits 3 under --once when the program cannot be started", () => {
    const d = new SupervisorDriver({ once: true }, { failures: ["spawn EACCES"] });
    const out = d.send({ type: "start" });
    assert.deepEqual(noticesOf(out, "bootFailed").map((n) => n.cause), [{ spawn: "spawn EACCES" }]);
    assert.deepEqual(brief(out).at(-1), "exit:3");
  });

  test("Supervisor.dispatch() times the ready deadline from the process's start", () => {
    const d = new SupervisorDriver({ workers: 1 });
    // Asked for at 0; a slow preFork hook starts the process at 1.2 s.
    const [w] = spawnsIn(d.sup.dispatch({ type: "start", now: 0 }));
    d.now = 1_200;
    d.sup.dispatch({
      type: "spawned",
      workerId: w.id,
      now: d.now,
      expectsHello: false,
      requestLimit: 0,
    });
    assert.deepEqual(noticesOf(d.advance(999), "ready"), []);
    assert.equal(noticesOf(d.advance(1), "ready").length, 1);
  });

  test("Supervisor.dispatch() backs off a spawn that throws after boot and counts nothing for it", () => {
    const d = new SupervisorDriver({ workers: 1 });
    const [w] = d.boot();
    d.spawnBehaviour.failures = ["EMFILE: too many open files"];
    const out = d.exit(w, 9);
    assert.equal(noticesOf(out, "crashed")[0].delayMs, 0);
    assert.deepEqual(noticesOf(out, "bootFailed").map((n) => n.then), [
      { action: "respawn", delayMs: 200 },
    ]);
    assert.equal(d.sup.restarts.crash, 0, "a spawn that threw replaced nothing");
    assert.deepEqual(spawnsIn(d.advance(199)), []);
    const [again] = spawnsIn(d.advance(1));
    assert.equal(again.generation, 3);
    assert.equal(d.sup.restarts.crash, 1);
  });

  test("Supervisor.dispatch() takes a silent program as ready after 1 s, a reporter after 10 s", () => {
    const silent = new SupervisorDriver({ workers: 1 });
    silent.send({ type: "start" });
    assert.deepEqual(noticesOf(silent.advance(UNMANAGED_READY_MS - 1), "ready"), []);
    assert.equal(noticesOf(silent.advance(1), "booted").length, 1);

    const quiet = new SupervisorDriver({ workers: 1 }, { expectsHello: true });
    quiet.send({ type: "start" });
    assert.deepEqual(noticesIn(quiet.advance(UNMANAGED_READY_MS)), []);
    const late = quiet.advance(MANAGED_READY_MS - UNMANAGED_READY_MS);
    assert.deepEqual(noticesIn(late).map((n) => n.kind), ["noReadyReport", "ready", "booted"]);
  });

  test("Supervisor.wakeAt() names the next deadline, and none once nothing waits for time", () => {
    const d = new SupervisorDriver({ workers: 1 });
    d.send({ type: "start" });
    assert.equal(d.sup.wakeAt(), UNMANAGED_READY_MS);
    d.advance(UNMANAGED_READY_MS);
    // Silent programs are not watched: nothing to wake for.
    assert.equal(d.sup.wakeAt(), undefined);
  });
});

describe("Supervisor crashes and backoff", () => {
  test("Supervisor.dispatch() respawns crashes at once, then 200, 400, 800 ms while they repeat", () => {
    const d = new SupervisorDriver({ workers: 1 });
    let [w] = d.boot();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      d.advance(1_000);
      const out = d.exit(w, 7);
      const [crash] = noticesOf(out, "crashed");
      delays.push(crash.delayMs);
      const respawned = spawnsIn(out).concat(spawnsIn(d.advance(crash.delayMs)));
      assert.equal(respawned.length, 1, `crash ${i + 1} respawned ${respawned.length} times`);
      w = respawned[0];
      d.readyUp(w);
    }
    assert.deepEqual(delays, [0, 200, 400, 800]);
    assert.equal(w.generation, 5);
    assert.equal(d.sup.restarts.crash, 4);
  });

  test("Supervisor.dispatch() forgets old crashes after 10 s", () => {
    const d = new SupervisorDriver({ workers: 1 });
    let [w] = d.boot();
    d.exit(w, 1);
    w = d.current(1);
    d.readyUp(w);
    d.advance(10_001);
    assert.equal(noticesOf(d.exit(w, 1), "crashed")[0].delayMs, 0);
  });

  test("backoffDelay() doubles from 200 ms and stops at 5 s", () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 20].map(backoffDelay), [
      0,
      200,
      400,
      800,
      1600,
      3200,
      5000,
      5000,
    ]);
  });

  test("Supervisor.dispatch() gives up with exit 3 after repeated boot failures in a booted master", () => {
    // Reporters are given 10 s to say ready: none of these is taken as ready meanwhile.
    const d = new SupervisorDriver({ workers: 1 }, { expectsHello: true });
    const [w] = d.boot();
    d.exit(w, 1);
    const seen: string[] = [];
    let last: string[] = [];
    for (let i = 1; i <= MAX_BOOT_FAILURES; i++) {
      d.advance(5_000);
      const out = d.exit(d.current(1), 1);
      const [n] = noticesOf(out, "bootFailed");
      seen.push(n.then.action === "respawn" ? `respawn ${n.then.delayMs}` : n.then.action);
      last = brief(out);
    }
    assert.deepEqual(seen, ["respawn 200", "respawn 400", "respawn 800", "respawn 1600", "giveUp"]);
    // Nothing else runs: the master exits at once.
    assert.deepEqual(last, ["forget:1", "exit:3"]);
    assert.deepEqual(d.sup.phase, { name: "exited", code: 3 });
  });

  test("Supervisor.dispatch() reports a crash with its signal and the exit action forgets the slot", () => {
    const d = new SupervisorDriver({ workers: 2 });
    const [a] = d.boot();
    const out = d.exit(a, null, "SIGKILL");
    assert.deepEqual(brief(out), ["forget:1", "spawn:1.2"]);
    const [crash] = noticesOf(out, "crashed");
    assert.equal(crash.signal, "SIGKILL");
  });
});

describe("Supervisor rolling replacement", () => {
  test("Supervisor.dispatch() rolls slot by slot on HUP, the new worker ready before the old drains", () => {
    const d = new SupervisorDriver({ workers: 2 });
    const [a, b] = d.boot();
    assert.deepEqual(brief(d.send({ type: "signal", signal: "SIGHUP" })), ["reload"]);
    const out = d.send({
      type: "reloaded",
      config: { workers: 2, once: false, timeoutMs: 30_000, gracefulMs: 5_000, heartbeatMs: 5_000 },
    });
    assert.deepEqual(noticesOf(out, "reloading"), [{ kind: "reloading", workers: 2 }]);
    const [a2] = spawnsIn(out);
    assert.deepEqual([a2.slot, a2.generation], [1, 2]);
    // Slot 2 waits, and the old worker serves on until its successor is ready.
    assert.deepEqual(brief(d.advance(100)), []);
    const swap = d.readyUp(a2);
    assert.deepEqual(brief(swap), ["shutdown:1.1", "spawn:2.2"]);
    const shutdown = swap.find((x) => x.type === "shutdown");
    assert.equal(shutdown?.type === "shutdown" && shutdown.gracefulMs, 5_000);
    const b2 = spawnsIn(swap)[0];
    assert.deepEqual(brief(d.readyUp(b2)), ["shutdown:2.1"]);
    // Each exit forgets that worker's gauges, its successor's stay.
    assert.deepEqual(brief(d.exit(a, 0)), ["forget:1"]);
    assert.deepEqual(brief(d.exit(b, 0)), ["forget:2"]);
    assert.equal(d.sup.restarts.reload, 2);
    assert.deepEqual(d.sup.workers().map((v) => `${v.worker.slot}.${v.worker.generation}`), [
      "1.2",
      "2.2",
    ]);
  });

  test("Supervisor.dispatch() SIGKILLs a draining worker past its graceful time", () => {
    const d = new SupervisorDriver({ workers: 1, gracefulMs: 2_000 });
    d.boot();
    d.send({ type: "signal", signal: "SIGHUP" });
    const [next] = spawnsIn(
      d.send({
        type: "reloaded",
        config: { workers: 1, once: false, timeoutMs: 0, gracefulMs: 2_000, heartbeatMs: 5_000 },
      }),
    );
    d.readyUp(next);
    assert.deepEqual(brief(d.advance(2_999)), []);
    assert.deepEqual(brief(d.advance(1)), ["SIGKILL:1.1"]);
  });

  test("Supervisor.dispatch() keeps the old generation when the new one cannot boot", () => {
    const d = new SupervisorDriver({ workers: 2, timeoutMs: 2_000 });
    const [a, b] = d.boot();
    d.send({ type: "signal", signal: "SIGHUP" });
    const config = {
      workers: 2,
      once: false,
      timeoutMs: 2_000,
      gracefulMs: 30_000,
      heartbeatMs: 5_000,
    };
    const [a2] = spawnsIn(d.send({ type: "reloaded", config }));
    const out = d.exit(a2, 1);
    const [failed] = noticesOf(out, "bootFailed");
    assert.deepEqual(failed.then, { action: "keep", generation: 1 });
    // The roll is abandoned: slot 2 is not rolled onto broken code, and slot 1 keeps generation 1.
    assert.deepEqual(brief(out), ["forget:1"]);
    assert.deepEqual(brief(d.advance(500)), []);
    assert.equal(d.current(1).id, a.id);
    assert.equal(d.sup.phase.name, "running");
    // The survivor is still watched: silence gets it killed and replaced.
    d.send({ type: "seen", workerId: a.id });
    d.advance(1_500);
    d.send({ type: "seen", workerId: b.id });
    const killed = d.advance(501);
    assert.equal(noticesOf(killed, "silent").length, 1);
    assert.deepEqual(brief(killed), ["SIGTERM:1.1"]);
    assert.equal(d.sup.restarts.reload, 0);
  });

  test("Supervisor.dispatch() recycles a worker after its request limit, once", () => {
    const d = new SupervisorDriver({ workers: 2 }, { requestLimit: 55 });
    const [a] = d.boot();
    assert.deepEqual(brief(d.send({ type: "seen", workerId: a.id, requests: 54 })), []);
    const out = d.send({ type: "seen", workerId: a.id, requests: 55 });
    assert.deepEqual(noticesOf(out, "recycling"), [{
      kind: "recycling",
      worker: a,
      requests: 55,
      limit: 55,
    }]);
    const [a2] = spawnsIn(out);
    assert.equal(a2.slot, 1);
    // More reports while the successor boots change nothing.
    assert.deepEqual(brief(d.send({ type: "seen", workerId: a.id, requests: 60 })), []);
    assert.deepEqual(brief(d.readyUp(a2)), ["shutdown:1.1"]);
    d.exit(a, 0);
    assert.equal(d.sup.restarts.max_requests, 1);
    assert.equal(d.sup.restarts.crash, 0);
  });

  test("Supervisor.dispatch() counts a crash of the old worker during a roll once, as a crash", () => {
    const d = new SupervisorDriver({ workers: 1 }, { requestLimit: 10 });
    const [a] = d.boot();
    const [a2] = spawnsIn(d.send({ type: "seen", workerId: a.id, requests: 10 }));
    assert.deepEqual(brief(d.exit(a, 1)), ["forget:1"]);
    d.readyUp(a2);
    assert.deepEqual(d.sup.restarts.crash + d.sup.restarts.max_requests, 1);
    assert.equal(d.sup.restarts.crash, 1);
  });

  test("Supervisor.dispatch() starts slots a reload adds on the new configuration, without rolling them", () => {
    const d = new SupervisorDriver({ workers: 2 });
    d.boot();
    d.send({ type: "signal", signal: "SIGHUP" });
    const out = d.send({
      type: "reloaded",
      config: {
        workers: 3,
        once: false,
        timeoutMs: 30_000,
        gracefulMs: 30_000,
        heartbeatMs: 5_000,
      },
    });
    assert.deepEqual(brief(out), ["spawn:3.1", "spawn:1.2"]);
    assert.deepEqual(noticesOf(out, "scaled"), [{ kind: "scaled", workers: 3 }]);
  });
});

describe("Supervisor scaling", () => {
  test("Supervisor.dispatch() adds a slot on TTIN and retires the highest on TTOU", () => {
    const d = new SupervisorDriver({ workers: 2 });
    d.boot();
    const up = d.send({ type: "signal", signal: "SIGTTIN" });
    const [c] = spawnsIn(up);
    assert.deepEqual([c.slot, c.generation], [3, 1]);
    assert.equal(d.sup.workerCount, 3);
    assert.equal(d.sup.restarts.scale, 1);
    d.readyUp(c);
    const down = d.send({ type: "signal", signal: "SIGTTOU" });
    assert.deepEqual(brief(down), ["shutdown:3.1"]);
    assert.equal(d.sup.workers().find((v) => v.worker.id === c.id)?.reason, "scale");
    assert.deepEqual(brief(d.exit(c, 0)), ["forget:3"]);
    assert.equal(d.sup.restarts.scale, 2);
    assert.equal(d.sup.workerCount, 2);
  });

  test("Supervisor.dispatch() never goes below one worker", () => {
    const d = new SupervisorDriver({ workers: 1 });
    d.boot();
    const out = d.send({ type: "signal", signal: "SIGTTOU" });
    assert.deepEqual(noticesIn(out), [{ kind: "atFloor" }]);
    assert.deepEqual(brief(out), []);
    assert.equal(d.sup.workerCount, 1);
  });

  test("Supervisor.dispatch() ignores TTIN and TTOU under --once and while stopping", () => {
    const once = new SupervisorDriver({ workers: 4, once: true });
    assert.equal(spawnsIn(once.send({ type: "start" })).length, 1);
    assert.deepEqual(once.send({ type: "signal", signal: "SIGTTIN" }), []);
    const stopping = new SupervisorDriver({ workers: 2 });
    stopping.boot();
    stopping.send({ type: "signal", signal: "SIGTERM" });
    assert.deepEqual(stopping.send({ type: "signal", signal: "SIGTTIN" }), []);
    assert.deepEqual(stopping.send({ type: "signal", signal: "SIGHUP" }), []);
  });

  test("Supervisor.dispatch() asks to reopen the logs on USR1", () => {
    const d = new SupervisorDriver({ workers: 1 });
    d.boot();
    assert.deepEqual(brief(d.send({ type: "signal", signal: "SIGUSR1" })), ["reopenLogs"]);
  });
});

describe("Supervisor heartbeats", () => {
  test("Supervisor.dispatch() kills a reporting worker silent for the timeout, then SIGKILLs it", () => {
    const d = new SupervisorDriver({ workers: 1, timeoutMs: 2_000 });
    const [w] = d.boot();
    d.advance(1_500);
    d.send({ type: "seen", workerId: w.id });
    assert.deepEqual(brief(d.advance(2_000)), []);
    const out = d.advance(1);
    assert.deepEqual(noticesOf(out, "silent").map((n) => n.silentMs), [2_001]);
    assert.deepEqual(brief(out), ["SIGTERM:1.1"]);
    assert.deepEqual(brief(d.advance(KILL_GRACE_MS)), ["SIGKILL:1.1"]);
    const exit = d.exit(w, null, "SIGKILL");
    assert.deepEqual(noticesOf(exit, "exited").map((n) => n.reason), ["timeout"]);
    assert.deepEqual(brief(exit), ["forget:1", "spawn:1.2"]);
    assert.equal(d.sup.restarts.timeout, 1);
    assert.equal(d.sup.restarts.crash, 0);
  });

  test("Supervisor.dispatch() never judges a program that does not report, nor with timeout 0", () => {
    const silent = new SupervisorDriver({ workers: 1, timeoutMs: 2_000 });
    silent.boot(false);
    assert.deepEqual(brief(silent.advance(60_000)), []);
    const off = new SupervisorDriver({ workers: 1, timeoutMs: 0 });
    off.boot();
    assert.deepEqual(brief(off.advance(60_000)), []);
  });

  test("Supervisor.wakeAt() wakes the loop for a heartbeat deadline", () => {
    const d = new SupervisorDriver({ workers: 1, timeoutMs: 2_000 });
    d.boot();
    assert.equal(d.sup.wakeAt(), 2_001);
  });
});

describe("Supervisor stopping", () => {
  test("Supervisor.dispatch() stops gracefully on TERM: drain, SIGKILL late ones, exit 0", () => {
    const d = new SupervisorDriver({ workers: 2, gracefulMs: 3_000 });
    const [a, b] = d.boot(true);
    const out = d.send({ type: "signal", signal: "SIGTERM" });
    assert.deepEqual(noticesOf(out, "stopping"), [{
      kind: "stopping",
      mode: "graceful",
      graceMs: 3_000,
    }]);
    assert.deepEqual(brief(out), ["shutdown:1.1", "shutdown:2.1"]);
    assert.deepEqual(brief(d.exit(a, 0)), ["forget:1"]);
    assert.deepEqual(brief(d.advance(3_999)), []);
    assert.deepEqual(brief(d.advance(1)), ["SIGKILL:2.1"]);
    assert.deepEqual(brief(d.exit(b, null, "SIGKILL")), ["forget:2", "exit:0"]);
    assert.deepEqual(d.sup.restarts.crash, 0);
  });

  test("Supervisor.dispatch() signals programs that cannot be asked to drain", () => {
    const d = new SupervisorDriver({ workers: 1 });
    d.boot(false);
    assert.deepEqual(brief(d.send({ type: "signal", signal: "SIGTERM" })), ["SIGTERM:1.1"]);
  });

  test("Supervisor.dispatch() stops quickly on INT: flush, SIGTERM at 300 ms, SIGKILL at 1.5 s", () => {
    const d = new SupervisorDriver({ workers: 2 });
    d.boot(true);
    const out = d.send({ type: "signal", signal: "SIGINT" });
    assert.deepEqual(brief(out), ["flush:1.1", "flush:2.1"]);
    assert.deepEqual(brief(d.advance(299)), []);
    assert.deepEqual(brief(d.advance(1)), ["SIGTERM:1.1", "SIGTERM:2.1"]);
    const kill = brief(d.advance(1_200));
    assert.ok(kill.includes("SIGKILL:1.1") && kill.includes("SIGKILL:2.1"), kill.join());
  });

  test("Supervisor.dispatch() cuts a graceful stop short on a second INT", () => {
    const d = new SupervisorDriver({ workers: 1, gracefulMs: 20_000 });
    const [w] = d.boot(true);
    d.send({ type: "signal", signal: "SIGTERM" });
    d.advance(1_000);
    assert.deepEqual(brief(d.send({ type: "signal", signal: "SIGINT" })), ["flush:1.1"]);
    assert.deepEqual(brief(d.advance(300)), ["SIGTERM:1.1"]);
    assert.deepEqual(brief(d.advance(1_200)), ["SIGKILL:1.1"]);
    assert.deepEqual(brief(d.exit(w, null, "SIGKILL")), ["forget:1", "exit:0"]);
    // A graceful stop asked during a quick one changes nothing.
    assert.deepEqual(d.send({ type: "signal", signal: "SIGTERM" }), []);
  });

  test("Supervisor.dispatch() exits 1 on a fatal failure of the master", () => {
    const d = new SupervisorDriver({ workers: 1 });
    const [w] = d.boot(true);
    d.send({ type: "fail", code: 1 });
    d.advance(300);
    assert.deepEqual(brief(d.exit(w, 0)), ["forget:1", "exit:1"]);
  });

  test("Supervisor.dispatch() answers nothing once exited", () => {
    const d = new SupervisorDriver({ workers: 1 });
    const [w] = d.boot(true);
    d.send({ type: "signal", signal: "SIGTERM" });
    d.exit(w, 0);
    assert.deepEqual(d.sup.phase, { name: "exited", code: 0 });
    assert.deepEqual(d.send({ type: "signal", signal: "SIGHUP" }), []);
  });
});

describe("Supervisor --once", () => {
  for (
    const [code, signal, status] of [
      [0, null, 0],
      [7, null, 7],
      [null, "SIGKILL", 137],
      [null, "SIGTERM", 143],
      [null, "SIGSYS", 159],
      [null, "SIGRTMIN+2", 164],
      [null, "SIGNOPE", 1],
    ] as const
  ) {
    test(`Supervisor.dispatch() exits ${status} under --once when the program ends with ${signal ?? `code ${code}`}`, () => {
      const d = new SupervisorDriver({ workers: 3, once: true });
      const [w] = d.boot(false);
      const out = d.exit(w, code, signal);
      assert.deepEqual(noticesOf(out, "programExited").length, 1);
      assert.deepEqual(brief(out), ["forget:1", "exit:" + status]);
    });
  }

  test("exitStatus() and signalNumber() use Linux numbers for every signal", () => {
    assert.equal(signalNumber("SIGSYS"), 31);
    assert.equal(signalNumber("SIGWINCH"), 28);
    assert.equal(signalNumber("SIGRTMAX"), 64);
    assert.equal(signalNumber("SIGRTMIN+40"), undefined);
    assert.equal(exitStatus(null, "SIGXCPU"), 152);
    assert.equal(exitStatus(null, null), 1);
  });
});
