import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import {
  MAX_UNSENT_MESSAGES,
  prepareSpawn,
  spawnWorkerProcess,
  type WorkerProcess,
} from "../../src/runtime/spawn.ts";
import { ROOT } from "../_helpers/cli.ts";
import { serverArgv, waitFor } from "../_helpers/master.ts";
import { fixture, testRuntime } from "../_helpers/runtime.ts";

const ACK = { type: "ack", v: 1, seq: 0, pad: "x".repeat(100) };

/** Starts `argv` with a Node IPC channel; resolves its process, output and exit. */
async function start(argv: string[], cut: number[]) {
  await prepareSpawn();
  let out = "";
  let exited!: () => void;
  const exit = new Promise<void>((r) => (exited = r));
  const worker: WorkerProcess = spawnWorkerProcess(argv, {
    env: { PATH: process.env.PATH ?? "" },
    cwd: ROOT,
    onCutOff: (unsent) => cut.push(unsent),
  }, {
    output: (_, chunk) => void (out += new TextDecoder().decode(chunk)),
    message: () => {},
    exit: () => exited(),
  });
  const deadline = setTimeout(() => worker.kill("SIGKILL"), 30_000);
  return {
    worker,
    out: () => out,
    exit: exit.then(() => clearTimeout(deadline)),
  };
}

test("spawnWorkerProcess() closes the IPC channel of a worker that never reads, and only then", async () => {
  const cut: number[] = [];
  // `sleep` holds the channel's descriptor and reads nothing from it.
  const deaf = await start(["sleep", "30"], cut);
  try {
    let sent = 0;
    // 3M acks would be 400 MB queued in the master; the cut comes long before.
    while (sent < 3_000_000 && deaf.worker.send({ ...ACK, seq: sent })) {
      sent++;
      if (sent % 1000 === 0) await new Promise((r) => setTimeout(r, 0));
    }
    assert.ok(sent < 100_000, `${sent} messages queued before the cut`);
    assert.deepEqual(cut.length, 1);
    assert.ok(cut[0] >= MAX_UNSENT_MESSAGES, `cut with ${cut[0]} waiting`);
    assert.equal(deaf.worker.connected, false);
    assert.equal(deaf.worker.send(ACK), false);
  } finally {
    deaf.worker.kill("SIGKILL");
    await deaf.exit;
  }
  // A worker that reads gets everything, however much.
  const reader = await start(serverArgv(testRuntime(), fixture("ipc_reader.ts")), cut);
  try {
    const N = 20_000;
    for (let i = 0; i < N; i++) {
      assert.equal(reader.worker.send({ ...ACK, seq: i }), true, `message ${i}`);
      if (i % 200 === 199) await new Promise((r) => setTimeout(r, 10));
    }
    reader.worker.send({ type: "done" });
    await waitFor("the reader's count", () => reader.out().includes("read "), 10_000);
    assert.match(reader.out(), new RegExp(`read ${N}\\b`));
    assert.equal(cut.length, 1, "the reader was cut off");
  } finally {
    reader.worker.kill("SIGKILL");
    await reader.exit;
  }
});
