import { test } from "node:test";
import assert from "node:assert/strict";
import { loadSettings } from "../../src/config/load.ts";
import { newRelicEndpoint } from "../../src/config/new_relic.ts";
import { cleanEnv, runCli } from "../_helpers/cli.ts";

const US_KEY = "0123456789abcdef0123456789abcdefNRAL";
const EU_KEY = "eu01xx0123456789abcdef0123456789NRAL";

test("newRelicEndpoint() picks the EU endpoint for EU keys and the US one otherwise", () => {
  assert.equal(newRelicEndpoint(EU_KEY), "https://otlp.eu01.nr-data.net");
  assert.equal(newRelicEndpoint(US_KEY), "https://otlp.nr-data.net");
});

test("loadSettings() exports to New Relic with the key, delta and the app name when no endpoint is set", () => {
  const r = loadSettings({
    env: { NEW_RELIC_LICENSE_KEY: EU_KEY, NEW_RELIC_APP_NAME: "shop;shop-all" },
  });
  assert.equal(r.values.otlp_endpoint, "https://otlp.eu01.nr-data.net");
  assert.deepEqual(r.values.otlp_headers, { "api-key": EU_KEY });
  assert.equal(r.values.otlp_temporality, "delta");
  assert.equal(r.values.service_name, "shop");
  assert.equal(r.origins.otlp_endpoint, "env:NEW_RELIC_LICENSE_KEY");
  assert.equal(r.origins.service_name, "env:NEW_RELIC_APP_NAME");
});

test("loadSettings() leaves the New Relic key alone when an endpoint or a choice is set", () => {
  const own = loadSettings({
    env: { NEW_RELIC_LICENSE_KEY: US_KEY, OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" },
  });
  assert.equal(own.values.otlp_endpoint, "http://collector:4318");
  assert.equal(own.values.otlp_headers, null);
  assert.equal(own.values.otlp_temporality, "cumulative");
  const chosen = loadSettings({
    env: {
      NEW_RELIC_LICENSE_KEY: US_KEY,
      OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: "cumulative",
      OTEL_SERVICE_NAME: "api",
      NEW_RELIC_APP_NAME: "shop",
    },
  });
  assert.equal(chosen.values.otlp_endpoint, "https://otlp.nr-data.net");
  assert.equal(chosen.values.otlp_temporality, "cumulative");
  assert.equal(chosen.values.service_name, "api");
});

test("forklift config --origin shows the preset's origins and never the key", async () => {
  const r = await runCli(["config", "--origin"], {
    env: cleanEnv({ NEW_RELIC_LICENSE_KEY: US_KEY }),
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^otlp_endpoint\s+= https:\/\/otlp\.nr-data\.net\s+env:NEW_RELIC_LICENSE_KEY$/m,
  );
  assert.match(r.stdout, /^otlp_headers\s+= \*\*\*\*\s+env:NEW_RELIC_LICENSE_KEY$/m);
  assert.ok(!r.stdout.includes(US_KEY) && !r.stderr.includes(US_KEY));
});
