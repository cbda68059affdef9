import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { channelToken, listenChannel } from "../../src/runtime/channel_server.ts";
import { MAX_UNSENT_BYTES, workerIO } from "../../src/runtime/worker_io.ts";
import { createServer, type Socket } from "node:net";
import { freePort, getFresh, RUNTIMES, waitFor } from "../_helpers/master.ts";
import { fixture, PRELOAD } from "../_helpers/runtime.ts";

test(
  "workerIO() lets a Deno worker's program start before the master answers, then talks over the socket",
  { skip: !RUNTIMES.deno },
  async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-io-`);
    const sock = `${dir}/channel/c.sock`;
    const server = listenChannel(sock);
    const token = channelToken();
    const got: Array<Record<string, unknown>> = [];
    const peer = server.expect(token, { message: (m) => got.push(m as Record<string, unknown>) });
    const port = await freePort();
    const names = "PORT,FORKLIFT_MASTER_PID,FORKLIFT_WORKER_ID,FORKLIFT_WORKERS," +
      "FORKLIFT_CHANNEL,FORKLIFT_CHANNEL_TOKEN";
    const child = spawn(RUNTIMES.deno!, [
      "run",
      "--unstable-net",
      "--preload",
      PRELOAD,
      "--allow-net",
      `--allow-env=${names}`,
      `--allow-read=${sock}`,
      `--allow-write=${sock}`,
      fixture("deno_plain.ts"),
    ], {
      env: {
        PATH: process.env.PATH ?? "",
        PORT: String(port),
        FORKLIFT_MASTER_PID: String(process.pid),
        FORKLIFT_WORKER_ID: "1",
        FORKLIFT_WORKERS: "1",
        FORKLIFT_CHANNEL: sock,
        FORKLIFT_CHANNEL_TOKEN: token,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    const deadline = setTimeout(() => child.kill("SIGKILL"), 20_000);
    try {
      // The master has said nothing yet: the program runs and answers anyway.
      const res = await waitFor("an answer", () => getFresh(port, "/"), 15_000);
      assert.equal(res?.status, 200, out);
      assert.match(out, /main started[\s\S]*listening/);
      await waitFor("hello", () => got.length >= 1, 5_000);
      assert.equal(got[0].type, "hello");
      assert.equal(got[0].pid, child.pid);
      assert.equal(peer.connected, true);
      peer.send({
        type: "welcome",
        v: 1,
        worker: 1,
        generation: 1,
        harvest_interval_ms: 60_000,
        heartbeat_ms: 0,
        resource: {},
      });
      await waitFor("ready", () => got.some((m) => m.type === "ready"), 5_000);
      assert.equal(got.find((m) => m.type === "ready")!.addr, `127.0.0.1:${port}`);
      peer.send({ type: "shutdown", v: 1, graceful_ms: 1000 });
      // The final harvest (the interval is a minute) carries the request made
      // before the welcome.
      const harvest = await waitFor(
        "final harvest",
        () => got.find((m) => m.type === "harvest"),
        5_000,
      );
      assert.equal(harvest.requests, 1);
      peer.send({ type: "ack", v: 1, seq: harvest.seq });
      assert.equal(await exited, 0, out);
      assert.ok(got.some((m) => m.type === "bye"));
    } finally {
      clearTimeout(deadline);
      child.kill("SIGKILL");
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  "workerIO() drops what a master that reads nothing would leave waiting past MAX_UNSENT_BYTES",
  async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-io-`);
    const sock = `${dir}/c.sock`;
    const conns: Socket[] = [];
    // A master that accepts and then reads nothing.
    const server = createServer((c) => {
      c.pause();
      conns.push(c);
    });
    await new Promise<void>((r) => server.listen(sock, () => r()));
    process.env.FORKLIFT_CHANNEL = sock;
    process.env.FORKLIFT_CHANNEL_TOKEN = channelToken();
    try {
      const io = workerIO();
      io.wake();
      const big = { type: "harvest", v: 1, pad: "x".repeat(1024 * 1024) };
      let dropped = 0;
      let accepted = 0;
      for (let i = 0; i < 64; i++) {
        io.send(big, (error) => {
          if (/reads nothing/.test(String(error))) dropped++;
        });
        accepted++;
        await new Promise((r) => setTimeout(r, 1));
      }
      await waitFor("drops", () => dropped > 0, 5_000);
      // 64 MiB offered: what fits under the bound waits, the rest is dropped at once.
      assert.ok(
        (accepted - dropped) * (1024 * 1024) <= MAX_UNSENT_BYTES + 1024 * 1024,
        `${accepted - dropped} messages of 1 MiB wait`,
      );
      assert.ok(dropped >= 64 - MAX_UNSENT_BYTES / (1024 * 1024) - 1, `${dropped} dropped`);
    } finally {
      delete process.env.FORKLIFT_CHANNEL;
      delete process.env.FORKLIFT_CHANNEL_TOKEN;
      for (const c of conns) c.destroy();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  "workerIO() connects again when the master closes its connection before answering, and says it all again",
  async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-io-`);
    const sock = `${dir}/c.sock`;
    const token = channelToken();
    const conns: Socket[] = [];
    let connections = 0;
    let heard = "";
    // A master crowded by silent connections: it closes the first two it gets
    // unread, then reads the third and answers.
    const server = createServer((c) => {
      conns.push(c);
      if (++connections <= 2) {
        c.destroy();
        return;
      }
      c.on("data", (d) => {
        heard += d;
        if (heard.split("\n").length > 2) c.write(`{"type":"welcome","v":1}\n`);
      });
    });
    await new Promise<void>((r) => server.listen(sock, () => r()));
    process.env.FORKLIFT_CHANNEL = sock;
    process.env.FORKLIFT_CHANNEL_TOKEN = token;
    try {
      const io = workerIO();
      const messages: unknown[] = [];
      let disconnected = false;
      io.onMessage((m) => messages.push(m));
      io.onDisconnect(() => (disconnected = true));
      io.send({ type: "hello", v: 1, pid: 1 });
      io.wake();
      await waitFor("the welcome", () => messages.length > 0, 5_000);
      assert.deepEqual(messages[0], { type: "welcome", v: 1 });
      assert.equal(connections, 3);
      assert.equal(heard, `${token}\n{"type":"hello","v":1,"pid":1}\n`);
      assert.equal(disconnected, false);
      assert.equal(io.connected(), true);
    } finally {
      delete process.env.FORKLIFT_CHANNEL;
      delete process.env.FORKLIFT_CHANNEL_TOKEN;
      for (const c of conns) c.destroy();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
