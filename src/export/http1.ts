/**
 * HTTP/1.1 for the master's own endpoint, over any byte stream: request heads
 * read under a deadline, GET and HEAD answered through a fetch-style handler,
 * keep-alive and pipelining in order (a bounded run of pipelined requests),
 * ambiguous framing refused, and a connection dropped rather than held
 * whenever a client is slow, oversized or malformed.
 *
 * The runtimes' own servers give no way to bound how long a client may take
 * to send its request head (Deno's keeps a half-sent head open for good), and
 * a master that often runs as root must not let anyone hold its descriptors.
 * The transport lives in `src/runtime/tcp_listen.ts`; this file only speaks
 * HTTP, so it is the same on Deno and Bun.
 *
 * @module
 */

/** Limits of one connection. */
export interface Http1Limits {
  /** Time to send a whole request head, counted from the connection or the last response. */
  headMs: number;
  /** Time a response may take to be written out to a client that reads slowly. */
  writeMs: number;
  /** Largest request head, in bytes. */
  maxHeadBytes: number;
}

/**
 * Requests answered in a row on one connection while the next was already
 * waiting (pipelined): the last of them is answered with `Connection: close`.
 * Each answer may render the whole exposition, so one client sending a
 * buffer of requests must not make the master render hundreds of times for
 * one read; a client that waits for each response is not counted.
 */
export const MAX_PIPELINED = 8;

/** Limits used when none are given: 10 s for a head or a response, heads up to 16 KiB. */
export const DEFAULT_HTTP1_LIMITS: Http1Limits = {
  headMs: 10_000,
  writeMs: 10_000,
  maxHeadBytes: 16 * 1024,
};

/** The byte stream under one connection. */
export interface ByteStream {
  /** Writes every byte; rejects when the peer is gone. */
  write(bytes: Uint8Array): Promise<void>;
  /** Closes the stream; no more data arrives after it. */
  close(): void;
}

/** A parsed request head. */
export interface RequestHead {
  method: string;
  target: string;
  version: "1.0" | "1.1";
  headers: Array<[string, string]>;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/1\.([01])$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Parses a request head (the bytes before the blank line, as latin-1 text).
 * Returns why it is not one when it is not.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRequestHead } from "./http1.ts";
 * const head = parseRequestHead("GET /metrics HTTP/1.1\r\nHost: x");
 * assert.ok(typeof head !== "string" && head.target === "/metrics");
 * ```
 */
export function parseRequestHead(text: string): RequestHead | string {
  const lines = text.split("\r\n");
  const line = REQUEST_LINE.exec(lines[0]);
  if (line === null) return "malformed request line";
  const headers: Array<[string, string]> = [];
  for (let i = 1; i < lines.length; i++) {
    const colon = lines[i].indexOf(":");
    if (colon <= 0) return "malformed header line";
    const name = lines[i].slice(0, colon);
    const value = lines[i].slice(colon + 1).trim();
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) return "malformed header line";
    headers.push([name.toLowerCase(), value]);
  }
  return { method: line[1], target: line[2], version: line[3] === "0" ? "1.0" : "1.1", headers };
}

/**
 * Why a request's framing is ambiguous, as RFC 9112 makes it a 400 (or
 * undefined when it is not): `Content-Length` values that are not digits or
 * disagree (repeated or comma-separated), `Content-Length` with
 * `Transfer-Encoding`, `Transfer-Encoding` in HTTP/1.0, more than one `Host`.
 * Two parsers reading such a request differently is how requests are smuggled.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { framingError, parseRequestHead, type RequestHead } from "./http1.ts";
 * const head = parseRequestHead("GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 5");
 * assert.ok(framingError(head as RequestHead) === "conflicting Content-Length");
 * ```
 */
export function framingError(head: RequestHead): string | undefined {
  const values = (name: string) => head.headers.filter(([n]) => n === name).map(([, v]) => v);
  const lengths = values("content-length").flatMap((v) => v.split(",").map((x) => x.trim()));
  if (lengths.some((x) => !/^[0-9]+$/.test(x))) return "invalid Content-Length";
  if (new Set(lengths.map((x) => x.replace(/^0+(?=.)/, ""))).size > 1) {
    return "conflicting Content-Length";
  }
  const te = values("transfer-encoding");
  if (te.length > 0 && lengths.length > 0) return "Content-Length with Transfer-Encoding";
  if (te.length > 0 && head.version === "1.0") return "Transfer-Encoding in HTTP/1.0";
  if (values("host").length > 1) return "more than one Host";
  return undefined;
}

/**
 * Headers every answer carries unless its handler gave its own (a page sets a
 * CSP of its own): no type sniffing, no framing, nothing a text or JSON answer
 * may load or run, no cached copy of live data, no referrer sent on.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SECURITY_HEADERS } from "./http1.ts";
 * assert.equal(SECURITY_HEADERS["x-content-type-options"], "nosniff");
 * ```
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
};

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

const encoder = new TextEncoder();
const CRLFCRLF = [13, 10, 13, 10];

function findHeadEnd(buf: Uint8Array, from: number): number {
  for (let i = Math.max(0, from - 3); i + 3 < buf.length; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return s;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * One HTTP/1.1 connection: feed it the bytes that arrive with
 * {@linkcode Http1Connection.receive}; it answers through `handler` and
 * closes the stream when the client is done, slow or wrong.
 *
 * @example Answer one request over an in-memory stream
 * ```ts
 * import assert from "node:assert/strict";
 * import { Http1Connection } from "./http1.ts";
 * const out: Uint8Array[] = [];
 * let closed = false;
 * const conn = new Http1Connection(
 *   { write: async (b) => void out.push(b), close: () => void (closed = true) },
 *   () => new Response("ok"),
 * );
 * conn.receive(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
 * for (let i = 0; i < 50 && !closed; i++) await new Promise((r) => setTimeout(r, 10));
 * const answer = out.map((b) => new TextDecoder().decode(b)).join("");
 * assert.match(answer, /^HTTP\/1\.1 200/);
 * ```
 */
export class Http1Connection {
  readonly #stream: ByteStream;
  readonly #handler: (request: Request) => Response | Promise<Response>;
  readonly #limits: Http1Limits;
  readonly #host: string;
  #buffer: Uint8Array = new Uint8Array(0);
  #busy = false;
  #closed = false;
  /** Requests answered in a row while the next one was already buffered. */
  #pipelined = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Whether a request head is being waited for (not a response being made). */
  waiting = true;
  /** When the current wait for a head began (performance.now()). */
  since: number = performance.now();
  /** Told once, when the connection is closed for any reason. */
  onClose: (() => void) | undefined;

  /**
   * @param stream The connection's bytes.
   * @param handler Answers each request.
   * @param limits Deadlines and sizes; {@linkcode DEFAULT_HTTP1_LIMITS} when not given.
   * @param host The `host:port` the server listens on, for request URLs without a Host header.
   */
  constructor(
    stream: ByteStream,
    handler: (request: Request) => Response | Promise<Response>,
    limits: Http1Limits = DEFAULT_HTTP1_LIMITS,
    host = "localhost",
  ) {
    this.#stream = stream;
    this.#handler = handler;
    this.#limits = limits;
    this.#host = host;
    this.#arm(limits.headMs);
  }

  /** Whether the connection is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes from the client. */
  receive(chunk: Uint8Array): void {
    if (this.#closed) return;
    const from = this.#buffer.length;
    // A client that waited for its last response starts a new run.
    if (from === 0 && !this.#busy) this.#pipelined = 0;
    this.#buffer = concat(this.#buffer, chunk);
    if (this.#busy) {
      // Pipelined requests wait their turn, but not without bound.
      if (this.#buffer.length > this.#limits.maxHeadBytes) this.close();
      return;
    }
    this.#next(from);
  }

  /** Closes the connection at once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    try {
      this.#stream.close();
    } catch {
      // Already closed by the peer.
    }
    this.onClose?.();
  }

  #arm(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.close(), ms);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  #next(from: number): void {
    const end = findHeadEnd(this.#buffer, from);
    if (end < 0) {
      if (this.#buffer.length > this.#limits.maxHeadBytes) {
        void this.#fail(431, "Request head too large\n");
      }
      return;
    }
    if (end > this.#limits.maxHeadBytes) return void this.#fail(431, "Request head too large\n");
    const head = parseRequestHead(latin1(this.#buffer.subarray(0, end)));
    this.#buffer = this.#buffer.slice(end + CRLFCRLF.length);
    if (typeof head === "string") return void this.#fail(400, `Bad request: ${head}\n`);
    void this.#answer(head);
  }

  async #answer(head: RequestHead): Promise<void> {
    this.#busy = true;
    this.waiting = false;
    const header = (name: string) => head.headers.find(([n]) => n === name)?.[1];
    const framing = framingError(head);
    if (framing !== undefined) return void await this.#fail(400, `Bad request: ${framing}\n`);
    // Every Content-Length agrees by now: the first value stands for them all.
    const length = header("content-length")?.split(",")[0].trim();
    if (
      header("transfer-encoding") !== undefined || (length !== undefined && !/^0+$/.test(length))
    ) {
      // Every route takes GET or HEAD: a request body has nowhere to go.
      return void await this.#fail(413, "Request bodies are not accepted\n");
    }
    const connection = (header("connection") ?? "").toLowerCase();
    const pipelined = ++this.#pipelined >= MAX_PIPELINED;
    const keepAlive = !pipelined &&
      (head.version === "1.1" ? !connection.includes("close") : connection.includes("keep-alive"));
    let response: Response;
    let body: Uint8Array;
    try {
      const path = head.target.startsWith("/") ? head.target : new URL(head.target).pathname;
      const host = header("host") || this.#host;
      const request = new Request(`http://${host.replace(/[^\w.:\-\[\]]/g, "")}${path}`, {
        method: head.method,
        headers: head.headers.filter(([, v]) => !/[^\x20-\x7e\t]/.test(v)),
      });
      response = await this.#handler(request);
      body = new Uint8Array(await response.arrayBuffer());
    } catch {
      return void await this.#fail(400, "Bad request\n");
    }
    // HEAD tells the length the GET would have, as the handler gave it.
    const given = response.headers.get("content-length");
    const declared = given === null ? NaN : Number(given);
    const headLength = Number.isSafeInteger(declared) && declared >= 0 ? declared : body.length;
    await this.#send(response.status, response.headers, head.method === "HEAD" ? null : body, {
      keepAlive,
      length: head.method === "HEAD" ? headLength : body.length,
    });
  }

  async #fail(status: number, message: string): Promise<void> {
    this.#busy = true;
    this.waiting = false;
    const body = encoder.encode(message);
    const headers = new Headers({ "content-type": "text/plain; charset=utf-8" });
    await this.#send(status, headers, body, { keepAlive: false, length: body.length });
  }

  async #send(
    status: number,
    headers: Headers,
    body: Uint8Array | null,
    options: { keepAlive: boolean; length: number },
  ): Promise<void> {
    if (this.#closed) return;
    let text = `HTTP/1.1 ${status} ${REASONS[status] ?? "Unknown"}\r\n`;
    for (const [name, value] of headers) {
      if (name === "content-length" || name === "connection") continue;
      text += `${name}: ${value}\r\n`;
    }
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
      if (!headers.has(name)) text += `${name}: ${value}\r\n`;
    }
    text += `content-length: ${options.length}\r\n`;
    text += `connection: ${options.keepAlive ? "keep-alive" : "close"}\r\n\r\n`;
    const bytes = body === null ? encoder.encode(text) : concat(encoder.encode(text), body);
    this.#arm(this.#limits.writeMs);
    try {
      await this.#stream.write(bytes);
    } catch {
      return this.close();
    }
    if (!options.keepAlive) return this.close();
    this.#busy = false;
    this.waiting = true;
    this.since = performance.now();
    this.#arm(this.#limits.headMs);
    if (this.#buffer.length > 0) this.#next(0);
  }
}
