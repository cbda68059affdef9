import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeLine, LineSplitter, parseLine } from "../../src/protocol/framing.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

test("LineSplitter.push() joins lines split across chunks, whatever the cut", () => {
  const text = '{"type":"hello","v":1}\n{"type":"ready","addr":"0.0.0.0:8000"}\n\n{"é":"ü"}\n';
  const all = bytes(text);
  for (let cut = 0; cut <= all.length; cut++) {
    const lines: (string | undefined)[] = [];
    const split = new LineSplitter((l) => lines.push(l));
    split.push(all.subarray(0, cut));
    split.push(all.subarray(cut));
    assert.deepEqual(lines, text.split("\n").slice(0, -1), `cut at ${cut}`);
  }
});

test("LineSplitter.push() keeps nothing of a chunk the caller reuses", () => {
  const lines: (string | undefined)[] = [];
  const split = new LineSplitter((l) => lines.push(l));
  const buf = bytes("abc");
  split.push(buf);
  buf.set(bytes("xyz"));
  split.push(bytes("d\n"));
  assert.deepEqual(lines, ["abcd"]);
});

test("LineSplitter.push() reports an over-long line once and skips the rest of it", () => {
  const lines: (string | undefined)[] = [];
  const split = new LineSplitter((l) => lines.push(l), 8);
  split.push(bytes("ok\n0123456"));
  split.push(bytes("789abcdef"));
  split.push(bytes("more\nafter\n"));
  assert.deepEqual(lines, ["ok", undefined, "after"]);
});

test("encodeLine() and parseLine() round-trip a message; bad JSON parses as undefined", () => {
  const message = { type: "harvest", v: 1, seq: 3, note: "two\nlines" };
  const line = new TextDecoder().decode(encodeLine(message));
  assert.equal(line.indexOf("\n"), line.length - 1, "one line, newline-terminated");
  assert.deepEqual(parseLine(line.slice(0, -1)), message);
  assert.equal(parseLine("{nope"), undefined);
});
