import { test } from "node:test";
import assert from "node:assert/strict";
import { ACCEPT_BACKOFF, acceptLoop } from "../../src/runtime/accept_loop.ts";

/** A listener that plays back a script of accepts: a connection name, or an error to throw. */
function scripted(script: Array<string | Error>) {
  const closed = Object.assign(new Error("listener closed"), { name: "BadResource" });
  return {
    accept: () => {
      const next = script.shift();
      if (next === undefined) return Promise.reject(closed);
      return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
    },
  };
}

const emfile = () => Object.assign(new Error("Too many open files"), { code: "EMFILE" });

test("acceptLoop() keeps accepting after failures, waiting longer after each in a row", async () => {
  const waits: number[] = [];
  const served: string[] = [];
  const errors: unknown[] = [];
  const loop = acceptLoop(
    scripted([emfile(), emfile(), emfile(), "a", emfile(), "b"]),
    (c) => served.push(c),
    {
      sleep: (ms) => {
        waits.push(ms);
        return Promise.resolve();
      },
      onError: (e) => errors.push(e),
    },
  );
  await loop.done;
  assert.deepEqual(served, ["a", "b"]);
  // A success resets the wait to the first one.
  assert.deepEqual(waits, [100, 200, 400, 100]);
  assert.equal(errors.length, 4);
  assert.deepEqual(ACCEPT_BACKOFF, { firstMs: 100, maxMs: 1_000 });
});

test("acceptLoop() waits at most a second however long the failures last", async () => {
  const waits: number[] = [];
  const loop = acceptLoop(scripted(Array.from({ length: 12 }, emfile)), () => {}, {
    sleep: (ms) => {
      waits.push(ms);
      return Promise.resolve();
    },
  });
  await loop.done;
  assert.equal(waits.length, 12);
  assert.equal(Math.max(...waits), 1_000);
});

test("acceptLoop() ends when stopped, and survives a serve that throws", async () => {
  const served: string[] = [];
  let loop: ReturnType<typeof acceptLoop<string>> | undefined = undefined;
  const listener = scripted(["a", "b", "c", "d"]);
  loop = acceptLoop(listener, (c) => {
    served.push(c);
    if (c === "a") throw new Error("this connection failed");
    if (c === "b") loop!.stop();
  });
  await loop.done;
  assert.deepEqual(served, ["a", "b"]);
});
