import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import {
  channelToken,
  INBOX_HIGH_BYTES,
  listenChannel,
  MAX_OUTBOX_BYTES,
} from "../../src/runtime/channel_server.ts";
import { execFileSync, spawn } from "node:child_process";
import { serverArgv, waitFor } from "../_helpers/master.ts";
import { fixture, testRuntime } from "../_helpers/runtime.ts";

function client(path: string): Promise<{ socket: Socket; lines: string[]; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const lines: string[] = [];
    let rest = "";
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      const parts = (rest + d).split("\n");
      rest = parts.pop()!;
      lines.push(...parts);
    });
    const closed = new Promise<void>((r) => socket.on("close", () => r()));
    socket.on("connect", () => resolve({ socket, lines, closed }));
    socket.on("error", reject);
  });
}

function withServer(fn: (path: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-channel-`);
    try {
      await fn(`${dir}/channel/c.sock`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test(
  "listenChannel() pairs a connection with its token and carries lines both ways",
  withServer(async (path) => {
    const server = listenChannel(path);
    try {
      const token = channelToken();
      const got: unknown[] = [];
      const peer = server.expect(token, { message: (m) => got.push(m) });
      assert.equal(peer.connected, false);
      assert.equal(peer.send({ type: "ack" }), false, "nothing to send to before it connects");
      const c = await client(path);
      c.socket.write(`${token}\n{"type":"hello","v":1}\nnot json\n{"type":"heart`);
      c.socket.write(`beat","v":1}\n`);
      await waitFor("messages", () => got.length === 3, 3000);
      assert.deepEqual(got, [{ type: "hello", v: 1 }, undefined, { type: "heartbeat", v: 1 }]);
      assert.equal(peer.connected, true);
      assert.equal(peer.send({ type: "welcome", v: 1 }), true);
      await waitFor("welcome", () => c.lines.length === 1, 3000);
      assert.deepEqual(JSON.parse(c.lines[0]), { type: "welcome", v: 1 });
      c.socket.end();
      await waitFor("disconnect", () => !peer.connected, 3000);
      c.socket.destroy();
    } finally {
      server.close();
    }
    assert.equal(existsSync(path), false, "the socket file is removed");
  }),
);

test(
  "listenChannel() closes a connection whose token is unknown or already used",
  withServer(async (path) => {
    const server = listenChannel(path);
    try {
      const token = channelToken();
      const got: unknown[] = [];
      server.expect(token, { message: (m) => got.push(m) });
      const first = await client(path);
      first.socket.write(`${token}\n`);
      const stranger = await client(path);
      stranger.socket.write(`${channelToken()}\n{"type":"hello","v":1}\n`);
      await stranger.closed;
      const second = await client(path);
      second.socket.write(`${token}\n{"type":"hello","v":1}\n`);
      await second.closed;
      const long = await client(path);
      long.socket.write("x".repeat(4096));
      await long.closed;
      assert.equal(server.rejected, 3);
      assert.deepEqual(got, []);
      first.socket.destroy();
    } finally {
      server.close();
    }
  }),
);

test("listenChannel() makes its socket the owner's alone, whatever the umask", () => {
  const dir = mkdtempSync(`${tmpdir()}/forklift-umask-`);
  try {
    const [cmd, ...args] = serverArgv(testRuntime(), fixture("channel_mode.ts"));
    const script = [cmd, ...args, `${dir}/channel/c.sock`].map((a) => `'${a}'`).join(" ");
    const out = execFileSync("sh", ["-c", `umask 000; exec ${script}`], {
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(out.trim().split("\n").pop(), "600");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  "listenChannel() closes a connection that does not name itself in time",
  withServer(async (path) => {
    const server = listenChannel(path, { tokenDeadlineMs: 300 });
    const silent = await client(path);
    try {
      const t0 = performance.now();
      await Promise.race([
        silent.closed,
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error("still open after 3 s")), 3000)
        ),
      ]);
      assert.ok(performance.now() - t0 >= 250, "closed before its deadline");
      assert.equal(server.rejected, 1);
    } finally {
      silent.socket.destroy();
      server.close();
    }
  }),
);

test(
  "listenChannel() lets a worker with its token in past any number of silent connections, closing the oldest silent ones",
  withServer(async (path) => {
    // A deadline far beyond the test: only the cap may close anything.
    const server = listenChannel(path, { tokenDeadlineMs: 60_000 });
    const clients: Awaited<ReturnType<typeof client>>[] = [];
    try {
      for (let i = 0; i < 200; i++) clients.push(await client(path));
      // Past 64 waiting, the oldest are closed: the newest stay.
      const closed = new Set<number>();
      clients.forEach((c, i) => c.closed.then(() => closed.add(i)));
      await waitFor("the oldest closed", () => closed.size >= 200 - 64, 3000);
      assert.deepEqual([...closed].sort((a, b) => a - b), [...Array(200 - 64).keys()]);
      assert.equal(server.rejected, 200 - 64);
      const token = channelToken();
      const got: unknown[] = [];
      server.expect(token, { message: (m) => got.push(m) });
      const worker = await client(path);
      clients.push(worker);
      worker.socket.write(`${token}\n{"type":"hello","v":1}\n`);
      await waitFor("hello", () => got.length === 1, 3000);
      // Named, it no longer counts among the waiting: 64 more silent ones close silent ones only.
      for (let i = 0; i < 64; i++) clients.push(await client(path));
      worker.socket.write(`{"type":"heartbeat","v":1}\n`);
      await waitFor("heartbeat", () => got.length === 2, 3000);
      assert.equal(server.rejected, 200);
    } finally {
      for (const c of clients) c.socket.destroy();
      server.close();
    }
  }),
);

test(
  "listenChannel() cuts off a worker that does not read once 1 MiB waits for it, and only it",
  withServer(async (path) => {
    const cut: number[] = [];
    const server = listenChannel(path, { onCutOff: (queued) => cut.push(queued) });
    try {
      const deaf = channelToken();
      const honest = channelToken();
      const deafPeer = server.expect(deaf, { message: () => {} });
      const honestPeer = server.expect(honest, { message: () => {} });
      const d = await client(path);
      const h = await client(path);
      d.socket.write(`${deaf}\n`);
      h.socket.write(`${honest}\n`);
      await waitFor("both named", () => deafPeer.connected && honestPeer.connected, 3000);
      d.socket.pause(); // reads nothing from now on
      const ack = { type: "ack", v: 1, seq: 0, pad: "x".repeat(100) };
      let sent = 0;
      // 3M acks would be 400 MB; the cut comes long before.
      while (sent < 3_000_000 && deafPeer.send({ ...ack, seq: sent })) {
        sent++;
        // A turn now and then, as between harvests: what the kernel takes, it takes.
        if (sent % 1000 === 0) await new Promise((r) => setTimeout(r, 0));
      }
      const bytes = sent * JSON.stringify(ack).length;
      assert.ok(bytes < 8 * 1024 * 1024, `${sent} acks (${bytes} bytes) sent before the cut`);
      assert.equal(server.cutOff, 1);
      assert.equal(cut.length, 1);
      assert.ok(cut[0] > MAX_OUTBOX_BYTES, `cut with ${cut[0]} bytes waiting`);
      assert.equal(deafPeer.send(ack), false, "nothing more is queued for it");
      d.socket.destroy();
      await waitFor("the deaf one gone", () => !deafPeer.connected, 3000);
      // The honest one reads what it is sent, as fast as it is sent.
      for (let i = 0; i < 5000; i++) assert.equal(honestPeer.send({ ...ack, seq: i }), true);
      await waitFor("every ack read", () => h.lines.length === 5000, 5000);
      assert.equal(server.cutOff, 1);
      h.socket.destroy();
    } finally {
      server.close();
    }
  }),
);

test(
  "listenChannel() dispatches a flood in turns, reads it no faster than it is dispatched, and lets others' messages through",
  withServer(async (path) => {
    const server = listenChannel(path);
    const floods: unknown[] = [];
    const clients: Awaited<ReturnType<typeof client>>[] = [];
    let flooder: ReturnType<typeof spawn> | undefined;
    try {
      const flood = channelToken();
      const honest = channelToken();
      let honestAt = -1;
      let timerAt = -1;
      let maxBacklog = 0;
      // A listener with some work to do per message, as the master's has: 20 µs.
      const work = () => {
        const end = performance.now() + 0.02;
        while (performance.now() < end) { /* busy */ }
      };
      server.expect(flood, {
        message: (m) => {
          floods.push(m);
          work();
          if (floods.length % 1000 === 0) maxBacklog = Math.max(maxBacklog, server.backlog);
        },
      });
      server.expect(honest, { message: () => void (honestAt = floods.length) });
      const h = await client(path);
      clients.push(h);
      h.socket.write(`${honest}\n`);
      const N = 50_000;
      // Another process writes 3 MB of messages as fast as the socket takes them.
      const [cmd, ...args] = serverArgv(testRuntime(), fixture("channel_flood.ts"));
      flooder = spawn(cmd, [...args, path, flood, String(N)], { stdio: "ignore" });
      await waitFor("the flood started", () => floods.length > 0, 5000);
      setTimeout(() => (timerAt = floods.length), 0);
      h.socket.write(`{"type":"heartbeat","v":1}\n`);
      await waitFor("the flood dispatched", () => floods.length === N, 30_000);
      assert.ok(
        honestAt >= 0 && honestAt < N / 2,
        `the honest message came after ${honestAt} of the flood's`,
      );
      assert.ok(
        timerAt >= 0 && timerAt < N / 2,
        `a timer ran after ${timerAt} of the flood's messages`,
      );
      assert.ok(
        server.paused >= 1,
        `never paused; backlog at most ${maxBacklog}; honest ${honestAt} timer ${timerAt}`,
      );
      assert.ok(
        maxBacklog <= 2 * INBOX_HIGH_BYTES, // the bound, and what one read may add to it
        `${maxBacklog} bytes read and not dispatched`,
      );
      console.log(
        `flood: ${N} messages, paused ${server.paused} times, backlog at most ${maxBacklog} bytes; ` +
          `the honest message after ${honestAt}, a timer after ${timerAt}`,
      );
    } finally {
      flooder?.kill("SIGKILL");
      for (const c of clients) c.socket.destroy();
      server.close();
    }
  }),
);

test(
  "listenChannel() admits one connection per isolate on a token, as numbered streams, and no more",
  withServer(async (path) => {
    const server = listenChannel(path);
    try {
      const token = channelToken();
      const got: Array<[unknown, number]> = [];
      const peer = server.expect(token, { message: (m, stream) => got.push([m, stream]) }, 2);
      const a = await client(path);
      const b = await client(path);
      a.socket.write(`${token}\n{"n":"a"}\n`);
      await waitFor("a", () => got.length === 1, 3000);
      b.socket.write(`${token}\n{"n":"b"}\n`);
      await waitFor("b", () => got.length === 2, 3000);
      assert.deepEqual(got, [[{ n: "a" }, 0], [{ n: "b" }, 1]]);
      const c = await client(path);
      c.socket.write(`${token}\n{"n":"c"}\n`);
      await c.closed;
      assert.equal(got.length, 2, "a third connection on a token for two got in");
      assert.equal(server.rejected, 1);
      assert.equal(peer.send({ to: "b" }, 1), true);
      assert.equal(peer.send({ to: "all" }), true);
      await waitFor("lines", () => a.lines.length === 1 && b.lines.length === 2, 3000);
      assert.deepEqual(a.lines.map((l) => JSON.parse(l)), [{ to: "all" }]);
      assert.deepEqual(b.lines.map((l) => JSON.parse(l)), [{ to: "b" }, { to: "all" }]);
      a.socket.end();
      await a.closed;
      assert.equal(peer.connected, true, "one stream left");
      b.socket.end();
      await waitFor("both gone", () => !peer.connected, 3000);
    } finally {
      server.close();
    }
  }),
);
