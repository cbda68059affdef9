// The container guide's examples are meant to be used as they are: its YAML
// parses, and the Kubernetes Deployment agrees with forklift's settings.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import { ROOT } from "./_helpers/cli.ts";
import { loadSettings } from "../src/config/load.ts";

const GUIDE = readFileSync(`${ROOT}docs/containers.md`, "utf8");

/** Every document of every ```yaml block, parsed by PyYAML (undefined where it is missing). */
function yamlDocuments(markdown: string): unknown[] | undefined {
  const blocks = [...markdown.matchAll(/^```yaml\n([^]*?)^```$/gm)].map((m) => m[1]);
  const r = spawnSync("python3", [
    "-c",
    "import json, sys, yaml; print(json.dumps([d for b in json.load(sys.stdin) for d in yaml.safe_load_all(b)]))",
  ], { input: JSON.stringify(blocks), encoding: "utf8" });
  if (r.error !== undefined || /No module named/.test(r.stderr ?? "")) return undefined;
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const DOCS = yamlDocuments(GUIDE);

// deno-lint-ignore no-explicit-any
type Any = any;

test("docs/containers.md Kubernetes example parses and agrees with forklift's settings", {
  skip: DOCS === undefined && !process.env.CI ? "needs python3 with PyYAML (python3-yaml)" : false,
}, () => {
  assert.ok(DOCS, "PyYAML is missing (Debian package python3-yaml; .ci/run installs it)");
  const docs = DOCS as Any[];
  const deployment = docs.find((d) => d?.kind === "Deployment");
  assert.ok(deployment, "a Deployment");
  assert.ok(docs.some((d) => d?.kind === "Service"), "a Service");
  assert.ok(docs.some((d) => Array.isArray(d?.scrape_configs)), "a Prometheus scrape config");
  const pod = deployment.spec.template;
  const [c] = pod.spec.containers;
  const env: Record<string, string> = {};
  for (const e of c.env) if (typeof e.value === "string") env[e.name] = e.value;
  // Every FORKLIFT_* variable is one forklift knows, with a value it takes.
  const forklift = Object.fromEntries(
    Object.entries(env).filter(([k]) => k.startsWith("FORKLIFT_")).map((
      [k, v],
    ) => [k, v.replace(/\$\((\w+)\)/g, "x")]),
  );
  const settings = loadSettings({ env: forklift }).values;
  const port = (name: string) => c.ports.find((p: Any) => p.name === name).containerPort;
  assert.equal(settings.metrics_bind, `0.0.0.0:${port("metrics")}`);
  assert.equal(pod.metadata.annotations["prometheus.io/port"], String(port("metrics")));
  assert.equal(pod.metadata.annotations["prometheus.io/path"], "/metrics");
  assert.deepEqual(c.readinessProbe.httpGet, { path: "/ready", port: "metrics" });
  assert.deepEqual(c.livenessProbe.httpGet, { path: "/live", port: "metrics" });
  // The grace period covers the preStop pause and forklift's own graceful stop.
  const pause = Number(c.lifecycle.preStop.exec.command[1]);
  assert.ok(
    pod.spec.terminationGracePeriodSeconds > pause + (settings.graceful_timeout as number),
    "terminationGracePeriodSeconds leaves forklift its graceful_timeout",
  );
  assert.match(String(settings.otlp_endpoint), /^http:\/\/[\w.-]+:4318$/);
  assert.equal(settings.workers, Number(c.resources.limits.cpu));
  // The Dockerfiles' health check is the command that follows /ready.
  assert.equal(GUIDE.match(/HEALTHCHECK .*CMD \["forklift", "status"\]/g)?.length, 2);
});
