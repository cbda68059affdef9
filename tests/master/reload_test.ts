import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { cleanEnv, ROOT } from "../_helpers/cli.ts";
import {
  freePort,
  getFresh,
  Master,
  RUNTIMES,
  serverArgv,
  sleep,
  tryGet,
  waitFor,
} from "../_helpers/master.ts";
import { OtlpReceiver, type Received } from "../_helpers/otlp_receiver.ts";

const APP = `${ROOT}tests/fixtures/master/app.ts`;
const DURATION = "http.server.request.duration";

/** Requests counted in one export's request-duration histogram (a delta, here). */
function requestsIn(r: Received): number {
  const metrics = r.body.resourceMetrics?.[0]?.scopeMetrics?.[0]?.metrics ?? [];
  const m = metrics.find((x: { name: string }) => x.name === DURATION);
  return (m?.histogram?.dataPoints ?? []).reduce(
    (n: number, p: { count: string }) => n + Number(p.count),
    0,
  );
}

function serviceNameIn(r: Received): unknown {
  const attrs = r.body.resourceMetrics[0].resource.attributes as Array<
    { key: string; value: Record<string, unknown> }
  >;
  return Object.values(attrs.find((a) => a.key === "service.name")!.value)[0];
}

const total = (rs: Received[]) => rs.reduce((n, r) => n + requestsIn(r), 0);

async function serve(port: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) assert.equal((await getFresh(port, "/"))?.status, 200);
}

/** A master run from an INI file the test rewrites before each HUP. */
async function start(runtime: "deno" | "bun", dir: string, ini: string) {
  writeFileSync(`${dir}/forklift.ini`, ini);
  const port = await freePort();
  const m = new Master(["-c", `${dir}/forklift.ini`, "--", ...serverArgv(runtime, APP)], {
    env: cleanEnv({ PORT: String(port) }),
    deadlineMs: 45_000,
  });
  await m.waitReady(1);
  return { m, port };
}

for (const runtime of ["deno", "bun"] as const) {
  describe(`HUP with ${runtime} workers`, { skip: !RUNTIMES[runtime] }, () => {
    test(`forklift run on HUP sends the next export to the new OTLP endpoint, each ${runtime} request once, with the new name and hooks`, async () => {
      const dir = mkdtempSync(`${tmpdir()}/forklift-reload-`);
      const first = new OtlpReceiver();
      const second = new OtlpReceiver();
      const hooks = `${dir}/hooks.mjs`;
      const marker = `${dir}/marker`;
      const hooksText = (v: string) =>
        `import { writeFileSync } from "node:fs";\n` +
        `export function onReload() { writeFileSync(${JSON.stringify(marker)}, "${v}"); }\n`;
      writeFileSync(hooks, hooksText("v1"));
      const ini = (url: string, name: string) =>
        [
          "[forklift]",
          "harvest_interval = 0.2",
          "export_interval = 0.3",
          "otlp_temporality = delta",
          "metrics_bind = 127.0.0.1:0",
          `otlp_endpoint = ${url}`,
          `service_name = ${name}`,
          `hooks = ${hooks}`,
        ].join("\n") + "\n";
      const { m, port } = await start(runtime, dir, ini(await first.listen(), "one"));
      try {
        await serve(port, 10);
        await waitFor("10 requests at the first endpoint", () => total(first.accepted) === 10);
        writeFileSync(`${dir}/forklift.ini`, ini(await second.listen(), "two"));
        writeFileSync(hooks, hooksText("v2"));
        m.signal("SIGHUP");
        await waitFor("an export at the new endpoint", () => second.accepted.length > 0);
        const sentBefore = first.received.length;
        await serve(port, 5);
        await waitFor("5 more requests exported", () => total(second.accepted) === 5);
        await sleep(700);
        assert.equal(first.received.length, sentBefore, "the old endpoint still gets exports");
        assert.equal(total(first.accepted) + total(second.accepted), 15, "lost or counted twice");
        assert.equal(serviceNameIn(second.accepted.at(-1)!), "two");
        assert.equal(readFileSync(marker, "utf8"), "v2", "the edited hooks module was not read");
        m.signal("SIGTERM");
        assert.equal((await m.exited).code, 0, m.stderr);
        assert.equal(total(first.accepted) + total(second.accepted), 15);
        assert.doesNotMatch(m.stderr, /needs a restart/);
      } finally {
        await m.cleanup();
        await first.close();
        await second.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test(`forklift run on HUP keeps the running hooks when the edited module fails or never loads, and takes it once fixed (${runtime})`, async () => {
      const dir = mkdtempSync(`${tmpdir()}/forklift-reload-`);
      const hooks = `${dir}/hooks.mjs`;
      const marker = `${dir}/marker`;
      writeFileSync(
        hooks,
        `import { writeFileSync } from "node:fs";\n` +
          `export function onReload() { writeFileSync(${JSON.stringify(marker)}, "old"); }\n`,
      );
      const ini =
        `[forklift]\nharvest_interval = 0.2\nmetrics_bind = 127.0.0.1:0\nhooks = ${hooks}\n`;
      const { m } = await start(runtime, dir, ini);
      try {
        writeFileSync(hooks, "export function onReload( {\n");
        m.signal("SIGHUP");
        await m.waitLog(/Reload: keeping the hooks as they were: Cannot load hooks module/);
        await waitFor("the old onReload", () => existsSync(marker));
        rmSync(marker);
        writeFileSync(hooks, "await new Promise(() => {});\nexport function onReload() {}\n");
        m.signal("SIGHUP");
        await m.waitLog(/Reload: keeping the hooks as they were: .* took more than 5 s to load/);
        await waitFor("the old onReload", () => existsSync(marker));
        assert.equal(readFileSync(marker, "utf8"), "old");
        // Fixed after a load that never finished: the next reload takes it.
        writeFileSync(
          hooks,
          `import { writeFileSync } from "node:fs";\n` +
            `export function onReload() { writeFileSync(${JSON.stringify(marker)}, "fixed"); }\n`,
        );
        m.signal("SIGHUP");
        await waitFor("the fixed onReload", () => readFileSync(marker, "utf8") === "fixed");
        await m.waitReady(1);
        m.signal("SIGTERM");
        assert.equal((await m.exited).code, 0, m.stderr);
      } finally {
        await m.cleanup();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test(`forklift run on HUP re-binds the metrics endpoint, moves the pid file and names once what needs a restart (${runtime})`, async () => {
      const dir = mkdtempSync(`${tmpdir()}/forklift-reload-`);
      const [p1, p2] = [await freePort(), await freePort()];
      // An address no reload can take: the endpoint must stay where it is.
      const taken = createServer();
      await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
      const p3 = (taken.address() as { port: number }).port;
      const ini = (bind: number, pid: string, once: boolean, host = "127.0.0.1") =>
        [
          "[forklift]",
          "harvest_interval = 0.2",
          `metrics_bind = ${host}:${bind}`,
          `pid_file = ${dir}/${pid}`,
          `once = ${once}`,
        ].join("\n") + "\n";
      const { m } = await start(runtime, dir, ini(p1, "a.pid", false));
      try {
        assert.equal(readFileSync(`${dir}/a.pid`, "utf8"), `${m.pid}\n`);
        writeFileSync(`${dir}/forklift.ini`, ini(p2, "b.pid", true));
        m.signal("SIGHUP");
        await waitFor("/status at the new address", () => tryGet(`http://127.0.0.1:${p2}/status`));
        await waitFor(
          "the old address closed",
          async () => await tryGet(`http://127.0.0.1:${p1}/status`, 1_000) === null,
        );
        assert.equal(readFileSync(`${dir}/b.pid`, "utf8"), `${m.pid}\n`);
        assert.ok(!existsSync(`${dir}/a.pid`), "the old pid file is left");
        await m.waitLog(/Reload left a changed setting as it was, needs a restart: once/);
        assert.equal(m.stderr.match(/needs a restart/g)?.length, 1, m.stderr);

        writeFileSync(`${dir}/forklift.ini`, ini(p3, "b.pid", false));
        m.signal("SIGHUP");
        await m.waitLog(/Cannot serve metrics at 127\.0\.0\.1:\d+, still serving at/);
        assert.ok(await tryGet(`http://127.0.0.1:${p2}/status`), "the endpoint was lost");

        // Another host on the same port: the old endpoint holds it, so it makes way.
        writeFileSync(`${dir}/forklift.ini`, ini(p2, "b.pid", false, "0.0.0.0"));
        m.signal("SIGHUP");
        await m.waitLog(new RegExp(`Serving metrics at http://0\\.0\\.0\\.0:${p2}/metrics`));
        assert.ok(await tryGet(`http://127.0.0.1:${p2}/status`), "the endpoint was lost");
        m.signal("SIGTERM");
        assert.equal((await m.exited).code, 0, m.stderr);
        assert.ok(!existsSync(`${dir}/b.pid`), "the pid file outlived the master");
      } finally {
        await m.cleanup();
        await new Promise((r) => taken.close(r));
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
