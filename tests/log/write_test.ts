import { test } from "node:test";
import assert from "node:assert/strict";
import { OutputWriter } from "../../src/log/write.ts";

/** A descriptor whose reader the test holds back and lets go. */
function heldReader() {
  const written: string[] = [];
  let release: (() => void) | undefined;
  let held = true;
  const write = (bytes: Uint8Array) =>
    new Promise<number>((resolve) => {
      const done = () => {
        written.push(new TextDecoder().decode(bytes));
        resolve(bytes.length);
      };
      if (held) release = done;
      else done();
    });
  const letGo = () => {
    held = false;
    release?.();
  };
  return { written, write, letGo };
}

test("OutputWriter drops and counts lines past its buffer while the reader stalls, and says so once", async () => {
  const reader = heldReader();
  const w = new OutputWriter(1, { limitBytes: 100, write: reader.write });
  const told: number[] = [];
  w.onDropped = (n) => told.push(n);
  // 100 bytes are held, the line in flight included: ten lines of ten; the rest is dropped.
  for (let i = 0; i < 1_000; i++) w.write(`line ${String(i).padStart(4, "0")}\n`);
  assert.equal(w.dropped, 990);
  assert.deepEqual(told, []);
  reader.letGo();
  await w.flush(1_000);
  const lines = reader.written.join("").split("\n").filter(Boolean);
  assert.deepEqual(
    lines,
    Array.from({ length: 10 }, (_, i) => `line ${String(i).padStart(4, "0")}`),
  );
  assert.deepEqual(told, [990]);
  w.write("after\n");
  await w.flush(1_000);
  assert.equal(reader.written.at(-1), "after\n");
  assert.deepEqual(told, [990]);
});

test("OutputWriter stops writing, without throwing, once the descriptor is closed", async () => {
  let calls = 0;
  const w = new OutputWriter(2, {
    write: () => {
      calls++;
      return Promise.reject(Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
    },
  });
  w.write("one\n");
  w.write("two\n");
  await w.flush(1_000);
  assert.equal(w.closed, true);
  w.write("three\n");
  await w.flush(1_000);
  assert.equal(calls, 1);
  assert.equal(w.dropped, 2);
});

test("OutputWriter.flush() gives up after its time when the reader never comes back", async () => {
  const reader = heldReader();
  const w = new OutputWriter(1, { write: reader.write });
  w.write("stuck\n");
  const t0 = Date.now();
  await w.flush(50);
  assert.ok(Date.now() - t0 < 5_000);
  reader.letGo();
});
