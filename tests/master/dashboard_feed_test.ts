import { test } from "node:test";
import assert from "node:assert/strict";
import { typedConfig } from "../../src/config/config.ts";
import type { StatusDocument } from "../../src/export/status.ts";
import { DashboardFeed } from "../../src/master/dashboard_feed.ts";

function feed(restarts: Record<string, number>, clock: { now: number }) {
  const status = {
    pid: 1,
    version: "0",
    started_at: "",
    uptime_s: 0,
    service_name: "api",
    master_timers_armed: 0,
    workers: [],
    totals: { workers: 0, requests: 0, restarts: 0, harvests: 0, dropped_points: 0 },
  } as StatusDocument;
  return new DashboardFeed({
    collect: () => undefined,
    status: () => status,
    // The supervisor hands out its live counters, changed in place.
    supervision: () => ({ workerCount: 2, restarts }),
    otlp: () => undefined,
    config: () =>
      typedConfig({
        metrics_token: "tok_S3CRET",
        otlp_endpoint: "https://u:pw@collector:4318/?api_key=k",
      }),
    now: () => clock.now,
  });
}

test("DashboardFeed.sample() shows a restart counted in place by the supervisor on the timeline", () => {
  const restarts = { crash: 0, reload: 0 };
  const clock = { now: 1000 };
  const f = feed(restarts, clock);
  f.sample();
  restarts.crash = 1;
  clock.now = 2000;
  f.sample();
  const doc = f.document(0) as { events: Array<{ kind: string; text: string }> };
  assert.deepEqual(doc.events.map((e) => e.kind), ["start", "restart"]);
  assert.match(doc.events[1].text, /crash/);
});

test("DashboardFeed.document() shows the settings with secrets redacted", () => {
  const f = feed({}, { now: 1000 });
  const doc = f.document(0) as { settings: Record<string, unknown>; otlp: unknown };
  const text = JSON.stringify(doc.settings);
  assert.ok(!text.includes("S3CRET") && !text.includes("pw@") && !text.includes("api_key=k"), text);
  assert.equal(doc.settings.metrics_token, "****");
  assert.equal(doc.settings.harvest_interval, 5);
  assert.equal(doc.otlp, null);
});
