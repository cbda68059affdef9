import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { afterDelay, cancelTimer, repeatEvery } from "../../src/runtime/timers.ts";
import { ROOT } from "../_helpers/cli.ts";
import { RUNTIMES } from "../_helpers/master.ts";

/** Runs `code` as a module under `runtime` with a bare environment; asserts it exits 0 within 5 s. */
function runModule(runtime: "deno" | "bun", code: string): string {
  const args = runtime === "deno" ? ["eval", code] : ["-e", code];
  const started = Date.now();
  const r = spawnSync(RUNTIMES[runtime]!, args, {
    encoding: "utf8",
    timeout: 10_000,
    env: { PATH: process.env.PATH ?? "" },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(Date.now() - started < 5_000, "the process was kept alive");
  return r.stdout.trim();
}

test("repeatEvery() repeats until cancelTimer() stops it", async () => {
  let n = 0;
  const t = repeatEvery(() => n++, 20);
  await new Promise((r) => setTimeout(r, 150));
  cancelTimer(t);
  const seen = n;
  assert.ok(seen >= 3 && seen <= 8, `${seen} ticks in 150 ms at 20 ms`);
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(n, seen, "no tick after cancelTimer()");
});

test("afterDelay() calls once, after its delay, unless cancelTimer() stops it", async () => {
  const started = performance.now();
  let at = -1;
  let n = 0;
  afterDelay(() => {
    n++;
    at = performance.now() - started;
  }, 40);
  let cancelled = 0;
  cancelTimer(afterDelay(() => cancelled++, 20));
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(n, 1);
  assert.ok(at >= 35, `called after ${at} ms of 40`);
  assert.equal(cancelled, 0, "called after cancelTimer()");
});

for (const runtime of ["deno", "bun"] as const) {
  test(`afterDelay() never keeps a ${runtime} process alive, and arms no runtime timer on Deno`, {
    skip: !RUNTIMES[runtime],
  }, () => {
    // A listener holds the process open until the delay has run.
    const code = `import { afterDelay } from "${ROOT}src/runtime/timers.ts";\n` +
      `import { createServer } from "node:net";\n` +
      `let armed = 0;\n` +
      `const st = globalThis.setTimeout;\n` +
      `globalThis.setTimeout = (...a) => (armed++, st(...a));\n` +
      `const server = createServer().listen(0, "127.0.0.1");\n` +
      `afterDelay(() => { console.log("ran", armed); server.close(); }, 30);\n` +
      `afterDelay(() => console.log("never"), 60_000);\n`;
    assert.equal(runModule(runtime, code), runtime === "deno" ? "ran 0" : "ran 2");
  });

  test(`repeatEvery() never keeps a ${runtime} process alive`, { skip: !RUNTIMES[runtime] }, () => {
    const code = `import { repeatEvery } from "${ROOT}src/runtime/timers.ts";\n` +
      `repeatEvery(() => {}, 10);\nconsole.log("armed");\n`;
    assert.equal(runModule(runtime, code), "armed");
  });
}
