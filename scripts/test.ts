/**
 * Runs the whole suite: the same test files under `deno test` and `bun test`,
 * the JSDoc examples under `deno test --doc`, then `deno fmt --check`,
 * `deno lint` and the settings-doc staleness check.
 * Ends with one line `N passed, N failed` (totals of everything) and a
 * non-zero exit code when anything failed.
 *
 * Usage: deno task test [-- FILTER_PATH...]
 *
 * @module
 */
import { spawn } from "node:child_process";
import process from "node:process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { findBun } from "./_bun.ts";

const root = new URL("..", import.meta.url).pathname;
const deno = process.execPath;
const only = process.argv.slice(2);

interface Outcome {
  passed: number;
  failed: number;
}

function run(
  label: string,
  cmd: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
) {
  return new Promise<{ code: number; output: string }>((resolve) => {
    console.log(`\n=== ${label}: ${[cmd.split("/").pop(), ...args].join(" ")}`);
    const child = spawn(cmd, args, {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    const onData = (d: Uint8Array) => {
      const s = new TextDecoder().decode(d);
      output += s;
      process.stdout.write(s);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    const timer = setTimeout(() => {
      console.log(`\n${label} ran past ${timeoutMs / 1000} s: killing it`);
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, output });
    });
  });
}

// deno's JUnit report lists a describe() group and each of its steps as test cases; only
// the leaves are tests, as bun counts them.
function denoCounts(junitPath: string): Outcome {
  let xml = "";
  try {
    xml = readFileSync(junitPath, "utf8");
  } catch {
    return { passed: 0, failed: 1 };
  }
  const cases = xml.split("<testcase ").slice(1).map((chunk) => ({
    name: /name="([^"]*)"/.exec(chunk)?.[1] ?? "",
    failed: /<(failure|error)[ >]/.test(chunk.split("</testcase>")[0]),
  }));
  const names = cases.map((c) => c.name);
  const leaves = cases.filter((c) => !names.some((n) => n.startsWith(`${c.name} &gt; `)));
  const failed = leaves.filter((c) => c.failed).length;
  return { passed: leaves.length - failed, failed };
}

// bun test prints " 12 pass" and " 0 fail".
function bunCounts(output: string): Outcome {
  const clean = output.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g"), "");
  const p = [...clean.matchAll(/^\s*(\d+) pass$/gm)].pop();
  const f = [...clean.matchAll(/^\s*(\d+) fail$/gm)].pop();
  return p ? { passed: Number(p[1]), failed: f ? Number(f[1]) : 0 } : { passed: 0, failed: 1 };
}

const bun = findBun();
const env = { FORKLIFT_TEST_DENO: deno, FORKLIFT_TEST_BUN: bun, NO_COLOR: "1" };
const targets = only.length ? only : ["tests/"];
const total: Outcome = { passed: 0, failed: 0 };
const add = (o: Outcome, label: string) => {
  total.passed += o.passed;
  total.failed += o.failed;
  console.log(`--- ${label}: ${o.passed} passed, ${o.failed} failed`);
};

// npm dependencies first, once: a master that downloads them while a test
// reads its output would mix Deno's "Download ..." lines into it.
const install = await run("deno install", deno, ["install", "--quiet"], env, 300_000);
if (install.code !== 0) add({ passed: 0, failed: 1 }, "deno install");

const junit = `${mkdtempSync(`${tmpdir()}/forklift-test-`)}/deno.xml`;
const d = await run(
  "deno test",
  deno,
  ["test", "-A", "--no-check", `--junit-path=${junit}`, ...targets],
  env,
  900_000,
);
const dc = denoCounts(junit);
add(d.code !== 0 && dc.failed === 0 ? { ...dc, failed: 1 } : dc, "deno test");

const b = await run("bun test", bun, ["test", "--timeout", "60000", ...targets], env, 900_000);
const bc = bunCounts(b.output);
add(b.code !== 0 && bc.failed === 0 ? { ...bc, failed: 1 } : bc, "bun test");

if (only.length === 0) {
  // Every example in the JSDoc asserts what it shows: run them as tests.
  const docJunit = junit.replace(/deno\.xml$/, "doc.xml");
  const doc = await run(
    "deno test --doc",
    deno,
    ["test", "--doc", "-A", `--junit-path=${docJunit}`, "src/", "mod.ts"],
    env,
    300_000,
  );
  const docCounts = denoCounts(docJunit);
  add(
    doc.code !== 0 && docCounts.failed === 0 ? { ...docCounts, failed: 1 } : docCounts,
    "doc examples",
  );

  for (
    const [label, args] of [
      ["deno fmt --check", ["fmt", "--check"]],
      ["deno lint", ["lint"]],
      ["settings doc is current", ["run", "-A", "scripts/gen_settings_doc.ts", "--check"]],
      ["type check", ["check", "src/cli/main.ts", "mod.ts", "tests/", "scripts/"]],
    ] as const
  ) {
    const r = await run(label, deno, [...args], env, 300_000);
    add(r.code === 0 ? { passed: 1, failed: 0 } : { passed: 0, failed: 1 }, label);
  }
}

console.log(`\n${total.passed} passed, ${total.failed} failed`);
process.exit(total.failed === 0 && total.passed > 0 ? 0 : 1);
