import process from "node:process";
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readEnv } from "../../src/runtime/read_env.ts";
import { runtimeId } from "../../src/runtime/detect.ts";
import { fixture, launch, testRuntime, workerRuntimes } from "../_helpers/runtime.ts";

test("runtimeId() names the runtime and its version", () => {
  assert.match(runtimeId(), new RegExp(`^${testRuntime()}/\\d+\\.\\d+\\.\\d+`));
});

test("readEnv() reads a set variable and returns undefined for an unset one", () => {
  assert.equal(readEnv("PATH"), process.env.PATH);
  assert.equal(readEnv("FORKLIFT_SURELY_UNSET_VARIABLE"), undefined);
});

function run(exec: string, args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(exec, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", ...env },
    });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
      reject(new Error(`Fixture timed out\n${out}\n${err}`));
    }, 10_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`Fixture exited ${code}\n${out}\n${err}`));
    });
  });
}

for (const rt of workerRuntimes()) {
  const on = rt.name === testRuntime() ? "" : ` (on ${rt.name})`;
  test(`hookServe() wraps every server form, forces reusePort and drains${on}`, async () => {
    const { args, env } = launch(rt, fixture("serve_hooks.ts"), {
      denoPermissions: ["-A", "--unstable-net"],
    });
    const out = await run(rt.exec, args, env);
    const line = out.split("\n").find((l) => l.startsWith("RESULT "));
    assert.ok(line, out);
    const r = JSON.parse(line.slice("RESULT ".length));
    assert.equal(r.installed, true);
    assert.equal(r.again, false, "hooked once per process");
    assert.equal(r.addrs.length, 3);
    for (const addr of r.addrs) assert.match(addr, /^127\.0\.0\.1:\d+$/);
    assert.equal(r.addrs[2], r.addrs[0], "second listener on the same port");
    assert.equal(r.body, "slow", "the in-flight request finished");
    assert.ok(r.drainMs >= 100, `drain waited for the in-flight request (${r.drainMs} ms)`);
    assert.equal(r.closed, 3);
    if (rt.name === "bun") {
      // The static route too: Bun would serve it without any JS, uncounted.
      assert.deepEqual(
        r.wrapped.sort(),
        [null, null, null, "/m", "/m", "/static", "/users/:id"].sort(),
      );
      assert.deepEqual(r.statics, ["s", "s"]);
    } else {
      assert.deepEqual(r.wrapped, [null, null, null]);
    }
  });
}
