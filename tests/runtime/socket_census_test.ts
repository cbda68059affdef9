import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type Socket } from "node:net";
import process from "node:process";
import { addSocket, openCensus } from "../../src/runtime/socket_census.ts";

test("addSocket() counts a port's listener queue and its established connections only", () => {
  const census = { backlog: 0, established: 0 };
  addSocket(census, 8000, 8000, 10, 3);
  addSocket(census, 8000, 8000, 1, 0);
  addSocket(census, 8000, 8000, 8, 0); // CLOSE_WAIT: the peer is gone, nothing to lose
  addSocket(census, 8000, 41234, 1, 0); // a connection of the app's to elsewhere
  assert.deepEqual(census, { backlog: 3, established: 1 });
});

/** Blocks the event loop, so that nothing is accepted meanwhile. */
function block(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

test(
  "openCensus() sees connections queued, then accepted, on a real listener",
  { skip: process.platform !== "linux" },
  async () => {
    const census = await openCensus();
    assert.ok(census, "no census on Linux");
    const accepted: Socket[] = [];
    const server = createServer((s) => void accepted.push(s));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    assert.deepEqual(census.take(port), { backlog: 0, established: 0 });
    // Two clients that connect and hold their connection, in processes of their own.
    const clients = [1, 2].map(() =>
      spawn("bash", ["-c", `exec 3<>/dev/tcp/127.0.0.1/${port}; sleep 5`], { stdio: "ignore" })
    );
    try {
      let queued = census.take(port);
      for (let i = 0; i < 40 && queued.backlog < 2; i++) {
        block(50);
        queued = census.take(port);
      }
      assert.deepEqual(queued, { backlog: 2, established: 0 });
      const end = Date.now() + 5_000;
      while (accepted.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(census.take(port), { backlog: 0, established: 2 });
      for (const s of accepted) s.destroy();
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(census.take(port).established, 0);
    } finally {
      for (const c of clients) if (c.pid !== undefined) process.kill(c.pid, "SIGKILL");
      for (const s of accepted) s.destroy();
      server.close();
      census.close();
    }
  },
);
