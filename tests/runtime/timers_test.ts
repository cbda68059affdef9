import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { cancelTimer, repeatEvery } from "../../src/runtime/timers.ts";
import { ROOT } from "../_helpers/cli.ts";
import { RUNTIMES } from "../_helpers/master.ts";

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

for (const runtime of ["deno", "bun"] as const) {
  test(`repeatEvery() never keeps a ${runtime} process alive`, { skip: !RUNTIMES[runtime] }, () => {
    const code = `import { repeatEvery } from "${ROOT}src/runtime/timers.ts";\n` +
      `repeatEvery(() => {}, 10);\nconsole.log("armed");\n`;
    const args = runtime === "deno" ? ["eval", code] : ["-e", code];
    const started = Date.now();
    const r = spawnSync(RUNTIMES[runtime]!, args, {
      encoding: "utf8",
      timeout: 10_000,
      env: { PATH: process.env.PATH ?? "" },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "armed");
    assert.ok(Date.now() - started < 5_000);
  });
}
