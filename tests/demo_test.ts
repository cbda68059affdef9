import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { cleanEnv, ROOT } from "./_helpers/cli.ts";
import { alive, freePort, RUNTIMES, tryGet, waitFor } from "./_helpers/master.ts";

const LOGTAPE = `${ROOT}node_modules/@logtape/logtape`;
const npmFound = spawnSync("npm", ["--version"], { encoding: "utf8" }).status === 0;

/**
 * A registry that knows one package, forklift's one dependency, packed from
 * the checkout's node_modules, and notes every name it is asked for.
 */
async function fakeRegistry(
  dir: string,
): Promise<{ server: Server; url: string; asked: string[]; integrity: string }> {
  const packed = spawnSync(
    "npm",
    ["pack", "--ignore-scripts", "--pack-destination", dir, LOGTAPE],
    {
      encoding: "utf8",
      timeout: 60_000,
    },
  );
  assert.equal(packed.status, 0, packed.stderr);
  const file = `${dir}/${packed.stdout.trim().split("\n").pop()}`;
  const tarball = readFileSync(file);
  const manifest = JSON.parse(readFileSync(`${LOGTAPE}/package.json`, "utf8"));
  const integrity = `sha512-${createHash("sha512").update(tarball).digest("base64")}`;
  const asked: string[] = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(req.url ?? "");
    asked.push(path);
    if (path === `/${manifest.name}`) {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({
        name: manifest.name,
        "dist-tags": { latest: manifest.version },
        versions: {
          [manifest.version]: {
            ...manifest,
            dist: { tarball: `${url}${manifest.name}/-/logtape.tgz`, integrity },
          },
        },
      }));
    } else if (path === `/${manifest.name}/-/logtape.tgz`) {
      res.end(tarball);
    } else {
      res.statusCode = 404;
      res.end("{}");
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  return { server, url, asked, integrity };
}

/** SIGKILL to the process group `child` leads, by its id; nothing when it is gone. */
function killGroup(child: ReturnType<typeof spawn>): void {
  try {
    process.kill(-child.pid!, "SIGKILL");
  } catch {
    // Gone already.
  }
}

test(
  "demo.ts installs only forklift's dependencies, cold, and its workers answer",
  { skip: !RUNTIMES.deno || !npmFound || !existsSync(LOGTAPE) },
  async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-demo-test-`);
    const copy = `${dir}/checkout`;
    const registry = await fakeRegistry(dir);
    let demo: ReturnType<typeof spawn> | undefined;
    const workers: number[] = [];
    try {
      // What the demo reads, without node_modules: a checkout as cloned.
      mkdirSync(copy);
      for (const part of ["src", "scripts", "examples", "deno.json", "package.json", "deno.lock"]) {
        cpSync(`${ROOT}${part}`, `${copy}/${part}`, { recursive: true });
      }
      // The lock pins the registry's tarball; this registry packs its own.
      const lock = JSON.parse(readFileSync(`${copy}/deno.lock`, "utf8"));
      const key = Object.keys(lock.npm).find((k) => k.startsWith("@logtape/logtape@"))!;
      lock.npm[key].integrity = registry.integrity;
      writeFileSync(`${copy}/deno.lock`, JSON.stringify(lock, null, 2));
      const port = await freePort();
      const env = cleanEnv({
        DENO_DIR: `${dir}/deno-dir`,
        NPM_CONFIG_REGISTRY: registry.url,
        NO_PROXY: "127.0.0.1,localhost",
        PORT: String(port),
        FORKLIFT_METRICS_BIND: "127.0.0.1:0",
        NO_COLOR: "1",
      });
      for (const k of ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"]) {
        delete env[k];
      }
      // Its own process group, which cleanup can stop whole: the launcher and the demo it starts.
      demo = spawn(RUNTIMES.deno!, ["run", "-A", `${copy}/scripts/demo.ts`], {
        cwd: copy,
        env,
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      let output = "";
      demo.stdout!.on("data", (d) => output += d);
      demo.stderr!.on("data", (d) => output += d);
      const deadline = setTimeout(() => killGroup(demo!), 50_000);
      try {
        const body = await waitFor(
          "the demo's workers",
          () => tryGet(`http://127.0.0.1:${port}/`, 2_000),
          40_000,
          100,
        ).catch((e) => {
          throw new Error(`${e.message}\n${output}`);
        });
        assert.match(body, /Hello from worker pid \d+/);
        const metrics = await waitFor(
          "the metrics address",
          () => /Serving metrics at http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(output),
          5_000,
        );
        const status = JSON.parse(
          (await tryGet(`http://127.0.0.1:${metrics[1]}/status`))!,
        ) as { workers: Array<{ pid: number }> };
        const pids = status.workers.map((w) => w.pid);
        workers.push(...pids);
        assert.equal(pids.length, 2);
        // One package asked for, as metadata and as its tarball, and nothing else.
        assert.deepEqual(
          [...new Set(registry.asked)].sort(),
          ["/@logtape/logtape", "/@logtape/logtape/-/logtape.tgz"],
        );
        assert.doesNotMatch(output, /approve-scripts|Ignored build scripts/);
        assert.equal(existsSync(`${copy}/node_modules`), false, "no node_modules made");
        // The checkout's lock is left as it was.
        assert.deepEqual(JSON.parse(readFileSync(`${copy}/deno.lock`, "utf8")), lock);
        demo.kill("SIGINT");
        await new Promise((r) => demo!.once("close", r));
        await waitFor("the demo's workers gone", () => pids.every((p) => !alive(p)), 10_000);
      } finally {
        clearTimeout(deadline);
      }
    } finally {
      if (demo) killGroup(demo);
      for (const pid of workers) if (alive(pid)) process.kill(pid, "SIGKILL");
      registry.server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
