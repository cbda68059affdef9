import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "../../src/config/errors.ts";
import { loadHooks } from "../../src/master/hooks.ts";

const master = { pid: 1, workers: 1, command: ["app"] };

test("loadHooks() reads an edited hooks module again, and an unchanged one not", async () => {
  const dir = mkdtempSync(`${tmpdir()}/forklift-hooks-`);
  const path = `${dir}/hooks.mjs`;
  const version = (v: string) => `export function onReload() { return "${v}"; }\n`;
  try {
    writeFileSync(path, version("v1"));
    const first = await loadHooks(path, dir);
    assert.equal(first.onReload?.(master), "v1");
    const again = await loadHooks("hooks.mjs", dir);
    assert.equal(again.onReload, first.onReload, "an unchanged module was evaluated again");
    writeFileSync(path, version("v2"));
    assert.equal((await loadHooks(path, dir)).onReload?.(master), "v2");
    writeFileSync(path, "export function onReload( {\n");
    await assert.rejects(loadHooks(path, dir), ConfigError);
    writeFileSync(path, version("v3"));
    assert.equal((await loadHooks(path, dir)).onReload?.(master), "v3");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
