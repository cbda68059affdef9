import { test } from "node:test";
import assert from "node:assert/strict";
import {
  framingError,
  Http1Connection,
  type Http1Limits,
  MAX_PIPELINED,
  parseRequestHead,
  type RequestHead,
} from "../../src/export/http1.ts";

const LIMITS: Http1Limits = { headMs: 100, writeMs: 100, maxHeadBytes: 1024 };
const bytes = (s: string) => new TextEncoder().encode(s);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A connection over an in-memory stream; `stall` makes every write hang. */
function open(
  handler = (r: Request) => new Response(`${r.method} ${new URL(r.url).pathname}`),
  stall = false,
) {
  const written: string[] = [];
  let closed = false;
  const conn = new Http1Connection(
    {
      write: (b) => {
        written.push(new TextDecoder().decode(b));
        return stall ? new Promise(() => {}) : Promise.resolve();
      },
      close: () => void (closed = true),
    },
    handler,
    LIMITS,
  );
  return { conn, written, isClosed: () => closed };
}

test("parseRequestHead() reads the request line and headers and refuses malformed ones", () => {
  assert.deepEqual(
    parseRequestHead("GET /metrics?x=1 HTTP/1.0\r\nHost: a:1\r\nAccept:  text/plain "),
    {
      method: "GET",
      target: "/metrics?x=1",
      version: "1.0",
      headers: [["host", "a:1"], ["accept", "text/plain"]],
    },
  );
  assert.equal(parseRequestHead("GET /metrics HTTP/2.0"), "malformed request line");
  assert.equal(parseRequestHead("GET  /metrics HTTP/1.1"), "malformed request line");
  assert.equal(parseRequestHead("GET / HTTP/1.1\r\nNo colon"), "malformed header line");
  assert.equal(parseRequestHead("GET / HTTP/1.1\r\nBad name: x"), "malformed header line");
  assert.equal(parseRequestHead("GET / HTTP/1.1\r\nX: a\u0000b"), "malformed header line");
});

test("Http1Connection answers pipelined requests in order on one kept-alive connection", async () => {
  const { conn, written, isClosed } = open();
  conn.receive(bytes("GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\n"));
  conn.receive(bytes("Host: x\r\n\r\n"));
  await sleep(10);
  assert.equal(written.length, 2);
  assert.match(written[0], /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(written[0], /content-length: 6\r\nconnection: keep-alive\r\n\r\nGET \/a$/);
  assert.match(written[1], /content-length: 7\r\n.*\r\n\r\n$/s, "HEAD: the length, no body");
  assert.equal(isClosed(), false);
});

test("Http1Connection closes a client that sends its head too slowly, or nothing", async () => {
  const silent = open();
  const dribble = open();
  for (const c of "GET / HTTP/1.1\r\nHost: x\r\n") {
    dribble.conn.receive(bytes(c));
    await sleep(3);
  }
  await sleep(LIMITS.headMs);
  assert.equal(silent.isClosed(), true);
  assert.equal(dribble.isClosed(), true);
  assert.deepEqual(dribble.written, [], "nothing answered to half a head");
});

test("Http1Connection closes a kept-alive connection idle past the head deadline", async () => {
  const { conn, written, isClosed } = open();
  conn.receive(bytes("GET / HTTP/1.1\r\n\r\n"));
  await sleep(LIMITS.headMs / 2);
  assert.equal(written.length, 1);
  assert.equal(isClosed(), false);
  await sleep(LIMITS.headMs);
  assert.equal(isClosed(), true);
});

test("Http1Connection closes a client that does not read its response", async () => {
  const { conn, isClosed } = open(undefined, true);
  conn.receive(bytes("GET / HTTP/1.1\r\n\r\n"));
  await sleep(LIMITS.writeMs + 50);
  assert.equal(isClosed(), true);
});

test("Http1Connection answers 431, 413 and 400, then closes", async () => {
  const cases: Array<[string, RegExp]> = [
    [`GET / HTTP/1.1\r\nX: ${"a".repeat(2000)}`, /^HTTP\/1\.1 431 /],
    ["POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", /^HTTP\/1\.1 413 /],
    ["GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", /^HTTP\/1\.1 413 /],
    ["GARBAGE\r\n\r\n", /^HTTP\/1\.1 400 /],
    ["GET * HTTP/1.1\r\n\r\n", /^HTTP\/1\.1 400 /],
  ];
  for (const [input, status] of cases) {
    const { conn, written, isClosed } = open();
    conn.receive(bytes(input));
    await sleep(5);
    assert.match(written[0] ?? "", status, input.slice(0, 30));
    assert.match(written[0], /connection: close\r\n/);
    assert.equal(isClosed(), true, input.slice(0, 30));
  }
});

test("Http1Connection honours Connection: close and HTTP/1.0 without keep-alive", async () => {
  for (const input of ["GET / HTTP/1.1\r\nConnection: close\r\n\r\n", "GET / HTTP/1.0\r\n\r\n"]) {
    const { conn, written, isClosed } = open();
    conn.receive(bytes(input));
    await sleep(5);
    assert.match(written[0], /connection: close\r\n/);
    assert.equal(isClosed(), true);
  }
});

test("framingError() refuses what two parsers could read differently, as RFC 9112 says", () => {
  const framing = (head: string) => framingError(parseRequestHead(head) as RequestHead);
  const cases: Array<[string, string | undefined]> = [
    ["GET / HTTP/1.1\r\nHost: x", undefined],
    ["GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0", undefined],
    ["GET / HTTP/1.1\r\nContent-Length: 0, 00", undefined],
    ["GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 5", "conflicting Content-Length"],
    ["GET / HTTP/1.1\r\nContent-Length: 5, 0", "conflicting Content-Length"],
    ["GET / HTTP/1.1\r\nContent-Length: +0", "invalid Content-Length"],
    ["GET / HTTP/1.1\r\nContent-Length: 0x0", "invalid Content-Length"],
    ["GET / HTTP/1.1\r\nContent-Length:", "invalid Content-Length"],
    [
      "GET / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked",
      "Content-Length with Transfer-Encoding",
    ],
    ["GET / HTTP/1.0\r\nTransfer-Encoding: chunked", "Transfer-Encoding in HTTP/1.0"],
    ["GET / HTTP/1.1\r\nHost: a\r\nHost: b", "more than one Host"],
  ];
  for (const [head, expected] of cases) assert.equal(framing(head), expected, head);
});

test("Http1Connection answers 400 to conflicting framing and closes before reading what follows", async () => {
  const inputs = [
    "GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
    "GET / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
  ];
  for (const input of inputs) {
    const { conn, written, isClosed } = open();
    conn.receive(bytes(input));
    await sleep(5);
    assert.equal(written.length, 1, input);
    assert.match(written[0], /^HTTP\/1\.1 400 Bad Request\r\n/, input);
    assert.match(written[0], /connection: close\r\n/);
    assert.equal(isClosed(), true);
  }
  const same = open();
  same.conn.receive(bytes("GET /a HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"));
  await sleep(5);
  assert.match(same.written[0], /^HTTP\/1\.1 200 OK\r\n/, "repeated equal lengths are one");
});

test("Http1Connection answers at most MAX_PIPELINED requests of one burst, then closes", async () => {
  let calls = 0;
  const { conn, written, isClosed } = open(() => new Response(String(++calls)));
  conn.receive(bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(40)));
  await sleep(20);
  assert.equal(calls, MAX_PIPELINED);
  assert.equal(written.length, MAX_PIPELINED);
  assert.match(written.at(-1)!, /connection: close\r\n/);
  assert.match(written[0], /connection: keep-alive\r\n/);
  assert.equal(isClosed(), true);

  // A client that waits for each answer is not pipelining: it is never cut off.
  const patient = open();
  for (let i = 0; i < MAX_PIPELINED * 3; i++) {
    patient.conn.receive(bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    await sleep(1);
  }
  assert.equal(patient.written.length, MAX_PIPELINED * 3);
  assert.equal(patient.isClosed(), false);
});
