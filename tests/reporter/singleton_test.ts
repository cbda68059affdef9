import { test } from "node:test";
import assert from "node:assert/strict";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { getReporter, REPORTER_KEY } from "../../src/reporter/reporter.ts";
import { counter, instrument, reporterStats } from "../../mod.ts";

test("reporterStats() shows that importing the reporter armed no timer", () => {
  // This test process plays no worker: no FORKLIFT_MASTER_PID naming its parent.
  const stats = reporterStats();
  assert.equal(stats.handshake, "standalone");
  assert.equal(stats.timersArmed, 0);
  assert.equal(stats.seq, 0);
});

test("getReporter() returns one reporter for every copy of the module", async () => {
  // A second copy of the sources elsewhere on disk, as when an app imports its
  // own copy of the reporter next to the injected preload.
  const src = fileURLToPath(new URL("../../src/", import.meta.url));
  const dir = await mkdtemp(join(tmpdir(), "forklift-copy-"));
  try {
    for (const sub of ["reporter", "runtime", "protocol", "config"]) {
      await cp(join(src, sub), join(dir, sub), { recursive: true });
    }
    const copy = await import(pathToFileURL(join(dir, "reporter", "reporter.ts")).href);
    assert.notEqual(copy.getReporter, getReporter, "really a second copy");
    assert.equal(copy.getReporter(), getReporter());
    assert.equal((globalThis as Record<symbol, unknown>)[REPORTER_KEY], getReporter());
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("counter() from mod.ts records into the singleton and arms the lazy timer once", async () => {
  const hits = counter("singleton.test.hits");
  assert.equal(counter("singleton.test.hits").name, hits.name);
  hits.add(1, { a: "x" });
  hits.add(2, { a: "x" });
  const handler = instrument((_req: Request) => new Response("ok"));
  await handler(new Request("http://localhost/"));
  const stats = reporterStats();
  assert.equal(stats.timersArmed, 1);
  assert.equal(stats.timersActive, 1);
  assert.equal(stats.periodMs, 60_000);
  assert.equal(stats.requests, 1);
});
