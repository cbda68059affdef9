/**
 * Integration: real worker processes on Deno and Bun, this test playing the
 * master over a real IPC channel, with real HTTP requests.
 */
import process from "node:process";
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeMaster } from "../_helpers/fake_master.ts";
import { fixture, testRuntime, workerRuntimes } from "../_helpers/runtime.ts";
import type { ReporterStats } from "../../src/reporter/reporter.ts";

const K = 20;
const DURATION = "http.server.request.duration";

async function fetchText(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
}

function portOf(addr: string): number {
  const port = Number(addr.slice(addr.lastIndexOf(":") + 1));
  assert.ok(port > 0, `ready.addr ${addr}`);
  return port;
}

/** Drives a worker through welcome → ready → K requests → shutdown → bye → exit 0. */
async function serveAndStop(master: FakeMaster, runtime: string): Promise<void> {
  const hello = await master.message("hello");
  assert.equal(hello.pid, master.child.pid);
  assert.match(hello.runtime, new RegExp(`^${runtime}/\\d`));
  master.welcome();
  const ready = await master.message("ready");
  const base = `http://127.0.0.1:${portOf(ready.addr)}`;
  for (let i = 0; i < K; i++) {
    const r = await fetchText(`${base}/n/${i}`);
    assert.equal(r.status, 200);
  }
  master.send({ type: "flush", v: 1 });
  await master.until(`${K} requests harvested`, () => master.total(DURATION) >= K || undefined);
  assert.equal(master.total(DURATION), K);
  const slow = fetchText(`${base}/slow`);
  await new Promise((r) => setTimeout(r, 100));
  master.send({ type: "shutdown", v: 1, graceful_ms: 3000 });
  const bye = await master.message("bye");
  const last = master.harvests().at(-1)!;
  assert.equal(bye.seq, last.seq);
  const exit = await master.exit;
  assert.equal(exit.code, 0, master.stderr);
  const response = await slow.catch((e) => ({ status: 0, text: String(e) }));
  assert.equal(response.status, 200, "the in-flight request was drained");
  assert.equal(master.total(DURATION), K + 1, "every response counted once");
  assert.equal(last.requests, K + 1);
}

for (const rt of workerRuntimes()) {
  const on = rt.name === testRuntime() ? "" : ` (worker on ${rt.name})`;

  test(`Reporter handshakes, harvests pre-welcome data and arms one timer${on}`, async () => {
    const master = FakeMaster.start(rt, fixture("serve_app.ts"));
    try {
      await master.message("hello");
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(master.messages.length, 1, "nothing but hello before welcome");
      master.welcome({ worker: 3, generation: 2 });
      const stats: ReporterStats = JSON.parse(await master.line("STATS "));
      assert.equal(stats.handshake, "welcomed");
      assert.equal(stats.worker, 3);
      assert.equal(stats.generation, 2);
      assert.equal(stats.timersArmed, 1);
      assert.equal(stats.timersActive, 1);
      assert.equal(stats.postForkRuns, 1);
      await master.until(
        "boot and postFork counters",
        () =>
          master.total("fixture.boot") === 1 && master.total("fixture.postfork") === 1 ||
          undefined,
      );
      assert.deepEqual(
        master.harvests().flatMap((h) => h.metrics).find((m) => m.name === "fixture.boot")
          ?.points[0].attributes,
        { phase: "import" },
      );
      assert.deepEqual(master.invalid, []);
      assert.equal(master.stdout.split("\n").filter((l) => l.startsWith("STATS")).length, 1);
    } finally {
      await master.close();
    }
  });

  test(`Reporter in a wrapped server counts every request, drains and says bye${on}`, async () => {
    const master = FakeMaster.start(rt, fixture("serve_app.ts"));
    try {
      await serveAndStop(master, rt.name);
      const routes = master.harvests().flatMap((h) => h.metrics).filter((m) => m.name === DURATION)
        .flatMap((m) => m.points.map((p) => p.attributes?.["http.route"]));
      assert.ok(routes.every((r) => r === undefined), "no route unless the app names it");
    } finally {
      await master.close();
    }
  });

  test(`preload counts Bun.serve static routes with their route${on}`, {
    skip: rt.name !== "bun",
  }, async () => {
    const master = FakeMaster.start(rt, fixture("bun_routes.ts"), { preload: true });
    try {
      await master.message("hello");
      master.welcome();
      const base = `http://127.0.0.1:${portOf((await master.message("ready")).addr)}`;
      const mix: Array<[string, string, number]> = [
        ["/", "root", 5],
        ["/health", "up", 3],
        ["/users/7", "user 7", 2],
        ["/other", "fallback", 2],
      ];
      for (const [path, body, n] of mix) {
        for (let i = 0; i < n; i++) {
          assert.deepEqual(await fetchText(base + path), { status: 200, text: body });
        }
      }
      master.send({ type: "flush", v: 1 });
      await master.until("12 requests harvested", () => master.total(DURATION) >= 12 || undefined);
      const byRoute = (route: string | undefined) =>
        master.total(DURATION, (a) => a["http.route"] === route);
      assert.deepEqual(
        [byRoute("/"), byRoute("/health"), byRoute("/users/:id"), byRoute(undefined)],
        [5, 3, 2, 2],
      );
    } finally {
      await master.close();
    }
  });

  test(`preload times a server that never imports forklift${on}`, async () => {
    const master = FakeMaster.start(rt, fixture("serve_plain.ts"), { preload: true });
    try {
      await serveAndStop(master, rt.name);
    } finally {
      await master.close();
    }
  });

  test(`Reporter lets a program without a server end once welcomed${on}`, async () => {
    const master = FakeMaster.start(rt, fixture("no_server.ts"), { preload: true });
    try {
      await master.message("hello");
      master.welcome();
      await master.line("NO-SERVER done");
      const exit = await Promise.race([
        master.exit,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 3000)),
      ]);
      assert.ok(exit, `still running 3 s after its program ended: ${master.stderr}`);
      assert.equal(exit.code, 0, master.stderr);
    } finally {
      await master.close();
    }
  });

  test(`preload times the export default { fetch } form${on}`, async () => {
    const master = FakeMaster.start(rt, fixture("serve_default.ts"), {
      preload: true,
      autoServe: true,
    });
    try {
      await serveAndStop(master, rt.name);
    } finally {
      await master.close();
    }
  });

  test(`Reporter records route, method and status of real requests${on}`, async () => {
    const master = FakeMaster.start(rt, fixture("serve_app.ts"));
    try {
      await master.message("hello");
      master.welcome();
      const base = `http://127.0.0.1:${portOf((await master.message("ready")).addr)}`;
      assert.equal((await fetchText(`${base}/users/7`)).status, 200);
      assert.equal((await fetchText(`${base}/throw`)).status, 500);
      master.send({ type: "flush", v: 1 });
      await master.until("2 requests", () => master.total(DURATION) >= 2 || undefined);
      assert.equal(
        master.total(DURATION, (a) => a["http.route"] === "/users/:id"),
        1,
      );
      assert.equal(
        master.total(DURATION, (a) => a["http.response.status_code"] === 500),
        1,
      );
    } finally {
      await master.close();
    }
  });

  test(`Reporter exits within 2 s when the master disconnects${on}`, async () => {
    const master = FakeMaster.start(rt, fixture("serve_app.ts"));
    try {
      await master.message("hello");
      master.welcome();
      await master.message("ready");
      const t0 = performance.now();
      master.child.disconnect();
      const exit = await Promise.race([
        master.exit,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error("worker still alive 2 s after disconnect")), 2000)
        ),
      ]);
      assert.equal(exit.code, 0);
      assert.ok(exit.at - t0 < 2000);
    } finally {
      await master.close();
    }
  });

  test(`Reporter in a grandchild with the inherited env stays standalone${on}`, async () => {
    const master = FakeMaster.start(rt, fixture("serve_app.ts"), {
      env: { FIXTURE_GRANDCHILD: "1" },
    });
    try {
      await master.message("hello");
      master.welcome();
      const grandchild = JSON.parse(await master.line("GRANDCHILD "));
      assert.notEqual(grandchild.ppid, Number(process.pid));
      assert.equal(grandchild.handshake, "standalone");
      assert.equal(grandchild.timersArmed, 0);
      assert.ok(!master.stdout.includes("GRANDCHILD-MSG"), master.stdout);
      assert.equal(master.messages.filter((m) => m.type === "hello").length, 1);
    } finally {
      await master.close();
    }
  });

  if (rt.name === "deno") {
    test("Reporter works with only the env permissions forklift grants", async () => {
      const master = FakeMaster.start(rt, fixture("serve_plain.ts"), {
        preload: true,
        denoPermissions: [
          "--allow-net",
          "--allow-read",
          "--allow-env=FORKLIFT_MASTER_PID,FORKLIFT_WORKER_ID,FORKLIFT_WORKERS",
        ],
      });
      try {
        await master.message("hello");
        master.welcome();
        await master.message("ready");
      } finally {
        await master.close();
      }
    });

    test("Reporter without env permission stays standalone and does not crash", async () => {
      const master = FakeMaster.start(rt, fixture("serve_plain.ts"), {
        preload: true,
        denoPermissions: ["--allow-net", "--allow-read"],
      });
      try {
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(master.messages.length, 0);
        assert.equal(master.child.exitCode, null, master.stderr);
        assert.ok(!master.stderr.includes("NotCapable"), master.stderr);
      } finally {
        await master.close();
      }
    });
  }
}
