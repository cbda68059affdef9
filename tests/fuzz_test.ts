/**
 * Fuzzing of everything that reads outside input: the worker-message
 * validator, the line framing, the INI reader, the argv parser, the
 * settings loader, the reading of package.json scripts, and the path a harvest takes to `/metrics`
 * and OTLP. Random and mutated input must end in a clean rejection (or
 * a one-line `ConfigError`), never another throw, a hang or a stack trace.
 *
 * Short by default; `FORKLIFT_FUZZ_ITERATIONS=200000 deno task test tests/fuzz_test.ts`
 * runs a long session. `FORKLIFT_FUZZ_SEED` replays one.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { parseCommandLine } from "../src/config/argv.ts";
import { ConfigError } from "../src/config/errors.ts";
import { parseIni } from "../src/config/ini_file.ts";
import { loadSettings } from "../src/config/load.ts";
import { LineSplitter, parseLine } from "../src/protocol/framing.ts";
import {
  checkMetric,
  type HarvestMetric,
  MAX_SERIES_ID,
  parseWorkerMessage,
} from "../src/protocol/messages.ts";
import { Aggregator } from "../src/export/aggregator.ts";
import { renderPrometheus } from "../src/export/prometheus.ts";
import { OtlpBatcher } from "../src/export/otlp_batch.ts";
import { encodeOtlpProtobuf } from "../src/export/otlp_protobuf.ts";
import { otlpJson, redactUrl, signalUrl, urlCredentials } from "../src/protocol/otlp.ts";
import { planLaunch } from "../src/master/inject.ts";
import { CommandError } from "../src/master/command.ts";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";

const ITERATIONS = Number(process.env.FORKLIFT_FUZZ_ITERATIONS ?? 3000);
const SEED = Number(process.env.FORKLIFT_FUZZ_SEED ?? Date.now() % 1_000_000);

/** A small seeded PRNG (mulberry32): the same seed gives the same inputs. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ODD = [
  "",
  "\u0000",
  "\n",
  "=",
  "[",
  "]",
  "#",
  ";",
  "--",
  "-w",
  "NaN",
  "Infinity",
  "-1",
  "1e309",
  "9007199254740993",
  "__proto__",
  "constructor",
  "💥",
  "\uD800",
  "%",
  "%ZZ",
  '"',
  "'",
  "{",
  "}",
  "null",
  "true",
];

function fuzzer(seed: number) {
  const r = prng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T>(xs: readonly T[]) => xs[int(xs.length)];
  const text = (max = 40): string => {
    let s = "";
    const n = int(max);
    for (let i = 0; i < n; i++) {
      s += r() < 0.3 ? pick(ODD) : String.fromCharCode(r() < 0.9 ? 32 + int(95) : int(0x3000));
    }
    return s;
  };
  const value = (depth = 0): unknown => {
    switch (int(depth > 3 ? 6 : 9)) {
      case 0:
        return text();
      case 1:
        return pick([0, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 1e308, -0]);
      case 2:
        return pick([true, false, null, undefined]);
      case 3:
        return int(1000);
      case 4:
        return pick(ODD);
      case 5:
        return {};
      case 6:
        return Array.from({ length: int(4) }, () => value(depth + 1));
      default: {
        const o: Record<string, unknown> = {};
        for (let i = 0; i < int(5); i++) o[pick([...KEYS, text(8)])] = value(depth + 1);
        return o;
      }
    }
  };
  return { r, int, pick, text, value };
}

const KEYS = [
  "type",
  "v",
  "seq",
  "metrics",
  "name",
  "kind",
  "points",
  "attributes",
  "value",
  "count",
  "sum",
  "buckets",
  "boundaries",
  "min",
  "max",
  "unit",
  "dropped",
  "requests",
  "pid",
  "runtime",
  "addr",
  "id",
  "ids",
  "values",
];

const VALID_HARVEST = {
  type: "harvest",
  v: 1,
  seq: 3,
  dropped: 0,
  requests: 10,
  metrics: [
    { name: "hits", kind: "counter", points: [{ attributes: { a: "b" }, value: 3 }] },
    {
      name: "jobs",
      kind: "counter",
      points: [{ id: 4, attributes: { q: "x" }, value: 1 }],
      ids: [4, 5],
      values: [2, 0],
    },
    {
      name: "d",
      kind: "histogram",
      unit: "s",
      boundaries: [0.1, 1],
      points: [{ attributes: {}, count: 2, sum: 0.3, buckets: [1, 1, 0], min: 0.1, max: 0.2 }],
    },
  ],
};

/** A deep copy of `x` with one random change somewhere inside. */
function mutate(f: ReturnType<typeof fuzzer>, x: unknown): unknown {
  const copy = structuredClone(x) as Record<string, unknown>;
  const paths: Array<[Record<string, unknown> | unknown[], string | number]> = [];
  const walk = (node: unknown) => {
    if (node === null || typeof node !== "object") return;
    for (const k of Object.keys(node)) {
      paths.push([node as Record<string, unknown>, Array.isArray(node) ? Number(k) : k]);
      walk((node as Record<string, unknown>)[k]);
    }
  };
  walk(copy);
  const [parent, key] = f.pick(paths);
  const op = f.int(3);
  if (op === 0) delete (parent as Record<string, unknown>)[key as string];
  else (parent as Record<string | number, unknown>)[key] = f.value();
  if (op === 2) (parent as Record<string, unknown>)[f.pick(KEYS)] = f.value();
  return copy;
}

function fuzz(name: string, body: (f: ReturnType<typeof fuzzer>) => void): void {
  test(`${name} (seed ${SEED}, ${ITERATIONS} inputs)`, () => {
    const f = fuzzer(SEED);
    const t0 = performance.now();
    for (let i = 0; i < ITERATIONS; i++) body(f);
    const ms = performance.now() - t0;
    assert.ok(ms < ITERATIONS * 5, `${ITERATIONS} inputs took ${ms | 0} ms: something is slow`);
  });
}

/** A `ConfigError` is the one accepted failure, as one line. */
function configErrorOnly(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${(e as Error)?.stack ?? e}`);
    assert.ok(!e.message.includes("\n"), `a message on several lines: ${e.message}`);
    assert.ok(e.message.length < 1000, `a message of ${e.message.length} characters`);
  }
}

/** Takes every accepted harvest: the merge must never throw on what the validator let through. */
const aggregator = new Aggregator();

fuzz("parseWorkerMessage() answers every random or mutated message without throwing", (f) => {
  const input = f.r() < 0.5 ? mutate(f, VALID_HARVEST) : f.value();
  const result = parseWorkerMessage(input);
  assert.equal(typeof result.ok, "boolean");
  if (!result.ok) assert.equal(typeof result.error, "string");
  else if (result.message.type === "harvest") {
    for (const m of result.message.metrics) {
      for (const p of m.points) {
        const read = m.kind === "histogram" ? [p.count, p.sum, p.min, p.max] : [p.value];
        for (const v of read) {
          assert.ok(v === undefined || Number.isFinite(v), `a non-finite ${v} got through`);
        }
      }
      const { ids = [], values = [] } = m;
      assert.equal(ids.length, values.length, "ragged columns got through");
      for (const id of ids) assert.ok(Number.isInteger(id) && id >= 0 && id < MAX_SERIES_ID);
      for (const v of values) assert.ok(Number.isFinite(v), `a non-finite ${v} got through`);
    }
    const dropped = aggregator.merge(1 + f.int(3), result.message.metrics);
    assert.ok(Number.isSafeInteger(dropped) && dropped >= 0);
  }
});

fuzz("Aggregator.merge() refuses what checkMetric() refuses and takes what it takes", (f) => {
  // One validation: a metric the harvest validator refuses, a fresh aggregator
  // drops whole; one it takes (points that carry their attributes), it holds.
  const metric = mutate(f, f.pick(VALID_HARVEST.metrics)) as HarvestMetric;
  if (typeof metric !== "object" || metric === null || !Array.isArray(metric.points)) return;
  if (
    metric.ids !== undefined || metric.values !== undefined ||
    metric.points.some((p) => p?.attributes === undefined)
  ) return;
  const agg = new Aggregator();
  const dropped = agg.merge(1, [metric]);
  if (checkMetric(metric) !== undefined) {
    if (checkMetric({ ...metric, points: [] }) !== undefined) {
      assert.equal(dropped, metric.points.length, JSON.stringify(metric));
    }
  } else assert.equal(dropped, 0, JSON.stringify(metric));
});

fuzz("LineSplitter and parseLine() frame any bytes without throwing", (f) => {
  const lines: unknown[] = [];
  const split = new LineSplitter(
    (line) => lines.push(line === undefined ? undefined : parseLine(line)),
    256,
  );
  const n = f.int(6);
  for (let i = 0; i < n; i++) {
    const chunk = new TextEncoder().encode(
      f.r() < 0.5 ? f.text(300) : JSON.stringify(f.value()) + "\n",
    );
    split.push(chunk.subarray(0, f.int(chunk.length + 1)));
  }
  assert.ok(lines.length <= n * 300);
});

fuzz("parseIni() reads any text or fails with one ConfigError line", (f) => {
  const lines = Array.from({ length: f.int(8) }, () =>
    f.pick([
      () => `[${f.text(10)}]`,
      () => `${f.text(10)} = ${f.text(20)}`,
      () => f.text(30),
      () => "[forklift]",
      () => `workers = ${f.pick(ODD)}`,
    ])());
  configErrorOnly(() => parseIni(lines.join(f.pick(["\n", "\r\n"])), "fuzz.ini"));
});

fuzz(
  "parseCommandLine() and loadSettings() take any argv and env or fail with one ConfigError line",
  (f) => {
    const flags = [
      "-w",
      "--workers",
      "--timeout",
      "--otlp-endpoint",
      "--otlp-header",
      "--metrics-bind",
      "--log-format",
      "--once",
      "--no-inject",
      "-c",
      "-e",
      "--",
      "run",
      "check",
      "config",
      "--dry-run",
    ];
    const argv = Array.from({ length: f.int(8) }, () => f.r() < 0.6 ? f.pick(flags) : f.text(12));
    const env: Record<string, string> = {};
    for (let i = 0; i < f.int(3); i++) {
      env[
        f.pick([
          "FORKLIFT_WORKERS",
          "FORKLIFT_TIMEOUT",
          "OTEL_EXPORTER_OTLP_HEADERS",
          "OTEL_RESOURCE_ATTRIBUTES",
          "OTEL_METRIC_EXPORT_INTERVAL",
          "NEW_RELIC_LICENSE_KEY",
          `FORKLIFT_${f.text(5)}`,
        ])
      ] = f.text(20);
    }
    configErrorOnly(() => {
      const line = parseCommandLine(argv);
      if (line.config !== undefined) return; // a file to read: not the fuzzer's business
      loadSettings({ flags: line.flags, environment: line.environment, env });
    });
  },
);

/** Names an object literal inherits: a lookup through one must never find them. */
const PROTO_NAMES = Object.getOwnPropertyNames(Object.prototype);

fuzz(
  "parseWorkerMessage(), Aggregator, renderPrometheus() and OtlpBatcher take prototype names and huge values in every string field",
  (f) => {
    const str = () =>
      f.pick([
        () => f.pick(PROTO_NAMES),
        () => `${f.pick(PROTO_NAMES)}/${f.pick(PROTO_NAMES)}`,
        () => f.pick(["x", "y"]).repeat(f.pick([64, 256, 1024, 20_000])),
        () => f.text(12),
      ])();
    const attributes = () => {
      const a: Record<string, unknown> = {};
      for (let i = 0; i < f.int(4); i++) {
        Object.defineProperty(a, str(), {
          configurable: true,
          value: f.r() < 0.5 ? str() : f.int(9),
          enumerable: true,
        });
      }
      return a;
    };
    const kind = f.pick(["counter", "updown", "gauge", "histogram"]);
    const boundaries = kind === "histogram"
      ? Array.from({ length: f.pick([0, 2, 300]) }, (_, i) => i)
      : undefined;
    const point = () =>
      kind === "histogram"
        ? {
          attributes: attributes(),
          count: 1,
          sum: 1,
          buckets: Array.from({ length: boundaries!.length + 1 }, (_, i) => i === 0 ? 1 : 0),
        }
        : { attributes: attributes(), value: f.pick([1, 1e300, 0.5]) };
    const raw = JSON.parse(JSON.stringify({
      type: "harvest",
      v: 1,
      seq: f.int(100),
      metrics: [{
        name: str(),
        kind,
        unit: f.r() < 0.7 ? str() : undefined,
        description: f.r() < 0.5 ? str() : undefined,
        boundaries,
        points: Array.from({ length: 1 + f.int(3) }, point),
      }],
    }));
    const parsed = parseWorkerMessage(raw);
    if (!parsed.ok || parsed.message.type !== "harvest") return;
    pipeline.merge(1 + f.int(2), parsed.message.metrics);
    if (f.r() < 0.05) pipeline.removeWorker(1 + f.int(2));
    if (f.r() < 0.05) {
      const state = pipeline.collect();
      renderPrometheus(state);
      const pending = batcher.build(state, Date.now());
      encodeOtlpProtobuf(pending.batch);
      JSON.stringify(otlpJson(pending.batch));
      pending.commit();
      // A delta is never negative, whatever went before.
      for (const m of pending.batch.metrics) {
        if (m.type === "histogram") {
          for (const p of m.points) assert.ok(p.count >= 0 && p.bucketCounts.every((c) => c >= 0));
        } else if (m.type === "sum" && m.isMonotonic) {
          for (const p of m.points) assert.ok(!(p.value < 0), `a delta of ${p.value}`);
        }
      }
    }
    assert.equal(
      typeof ({} as Record<string, unknown>).toString,
      "function",
      "Object.prototype changed",
    );
    assert.equal(Object.keys(Object.prototype).length, 0, "Object.prototype gained a key");
  },
);

const pipeline = new Aggregator();
const batcher = new OtlpBatcher({
  temporality: "delta",
  startMs: 0,
  resource: () => ({}),
  scope: { name: "fuzz", version: "0" },
});
fuzz(
  "redactUrl() never shows a URL's password or query values; signalUrl() keeps the query last",
  (f) => {
    // Secrets of random characters, '@' and ':' among them; '/', '?' and '#' would end the
    // authority (as URL parsing has it), so a password holding them is percent-encoded.
    const secret = () => {
      let s = "";
      for (let i = 0, n = 4 + f.int(12); i < n; i++) {
        s += f.r() < 0.3
          ? f.pick(["@", ":", "%40", "&", "=", "💥"])
          : String.fromCharCode(33 + f.int(94));
      }
      return s.replace(/[/?#\\]/g, "%2F");
    };
    const scheme = f.pick(["http", "https"]);
    const pass = secret();
    const user = f.r() < 0.5 ? "me" : "";
    const values = Array.from({ length: f.int(3) }, secret).map((v) => v.replace(/[&=]/g, "."));
    const query = values.map((v, i) => `k${i}=${v}`).join("&");
    const base = `${scheme}://${user}:${pass}@collector.example:4318/otlp${
      query ? `?${query}` : ""
    }`;
    const shown = redactUrl(base);
    const plain = `${scheme}://collector.example:4318/otlp/v1/metricsk0k1k2`;
    const hidden = (s: string) => s.length < 4 || plain.includes(s) || !shown.includes(s);
    assert.ok(hidden(pass), `${base} shown as ${shown}`);
    for (const v of values) assert.ok(hidden(v), `${base} shown as ${shown}`);
    assert.ok(shown.startsWith(`${scheme}://****@collector.example:4318/otlp`), shown);
    const url = signalUrl(base, "/v1/metrics");
    assert.ok(
      url.startsWith(`${scheme}://${user}:${pass}@collector.example:4318/otlp/v1/metrics`),
      url,
    );
    assert.ok(url.endsWith(query ? `?${query}` : "/v1/metrics"), url);
    urlCredentials(url);
    redactUrl(f.text(60));
  },
);

/** One project directory the package.json fuzz rewrites, removed when the process exits. */
const projectDir = mkdtempSync(`${tmpdir()}/forklift-fuzz-scripts-`);
process.on("exit", () => rmSync(projectDir, { recursive: true, force: true }));

fuzz(
  "planLaunch() takes any package.json and any npm, pnpm, yarn, bun or deno task argv, or fails with one line",
  (f) => {
    const scripts: Record<string, unknown> = {};
    for (let i = 0; i < f.int(5); i++) {
      scripts[
        f.pick(["start", "dev", "prestart", "postdev", "__proto__", "constructor", f.text(6)])
      ] = f.r() < 0.5
        ? `${f.pick(["bun", "deno", "node", "npm run", "yarn", f.text(6)])} ${f.text(16)}`
        : f.value();
    }
    const pkg = f.r() < 0.1 ? f.text(30) : JSON.stringify(f.r() < 0.9 ? { scripts } : f.value());
    writeFileSync(`${projectDir}/package.json`, pkg ?? "");
    const argv = [
      f.pick(["/usr/bin/npm", "/usr/bin/pnpm", "/usr/bin/yarn", "/usr/bin/bun", "/usr/bin/deno"]),
      ...Array.from(
        { length: f.int(5) },
        () => f.pick(["start", "run", "task", "--bun", "--", "dev", "--smol", f.text(6)]),
      ),
    ];
    try {
      planLaunch(argv, {
        inject: true,
        preload: "/p.js",
        env: { PATH: "/nonexistent" },
        cwd: projectDir,
      });
    } catch (e) {
      if (e instanceof CommandError) return; // a script's program that is not there: exit 127
      configErrorOnly(() => {
        throw e;
      });
    }
  },
);
