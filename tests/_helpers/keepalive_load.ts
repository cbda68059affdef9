/**
 * A load client that keeps its connections alive and counts failures as a
 * proxy does: a request is failed when it was sent and no whole response
 * came back on its connection (reset, closed, timed out). Nothing is
 * retried. A connection the server closed while it was idle is no failure:
 * the next request opens a new one, as a proxy's pool does; a response with
 * `Connection: close` ends its connection after it.
 *
 * @module
 */
import { connect, type Socket } from "node:net";
import { sleep } from "./ports.ts";

const REQUEST_TIMEOUT_MS = 5_000;

interface Answer {
  status: number;
  close: boolean;
}

/** One kept-alive HTTP/1.1 connection, one request at a time. */
class Connection {
  readonly socket: Socket;
  /** The server or the network ended it: no request may go on it any more. */
  ended = false;
  #buf = "";
  #pending?: { resolve(a: Answer): void; reject(e: Error): void };

  constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => {
      this.#buf += d;
      this.#parse();
    });
    const gone = (why: string) => {
      this.ended = true;
      const p = this.#pending;
      this.#pending = undefined;
      p?.reject(new Error(why));
    };
    socket.on("end", () => gone("closed before the response"));
    socket.on("close", () => gone("closed before the response"));
    socket.on("error", (e: NodeJS.ErrnoException) => gone(e.code ?? e.message));
  }

  static open(port: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => resolve(new Connection(socket)));
      socket.once("error", (e: NodeJS.ErrnoException) => reject(new Error(e.code ?? e.message)));
    });
  }

  request(path: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending = undefined;
        this.ended = true;
        this.socket.destroy();
        reject(new Error("timeout"));
      }, REQUEST_TIMEOUT_MS);
      this.#pending = {
        resolve: (a) => {
          clearTimeout(timer);
          resolve(a);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    });
  }

  #parse(): void {
    if (this.#pending === undefined) return;
    const head = this.#buf.indexOf("\r\n\r\n");
    if (head < 0) return;
    const lines = this.#buf.slice(0, head).split("\r\n");
    const status = Number(lines[0].split(" ")[1]);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    let end: number;
    const rest = this.#buf.slice(head + 4);
    if (headers.get("transfer-encoding")?.toLowerCase() === "chunked") {
      let at = 0;
      for (;;) {
        const eol = rest.indexOf("\r\n", at);
        if (eol < 0) return;
        const size = parseInt(rest.slice(at, eol), 16);
        if (rest.length < eol + 2 + size + 2) return;
        at = eol + 2 + size + 2;
        if (size === 0) break;
      }
      end = head + 4 + at;
    } else {
      const length = Number(headers.get("content-length") ?? 0);
      if (rest.length < length) return;
      end = head + 4 + length;
    }
    this.#buf = this.#buf.slice(end);
    const close = headers.get("connection")?.toLowerCase() === "close";
    const p = this.#pending;
    this.#pending = undefined;
    if (close) {
      this.ended = true;
      this.socket.end();
    }
    p.resolve({ status, close });
  }
}

/**
 * `connections` loops, each sending GET `path` on its own kept-alive
 * connection `pauseMs` after the previous answer came, until
 * {@linkcode KeepAliveLoad.stop}, `total` requests in all, or `deadlineMs`.
 *
 * @example
 * ```ts ignore
 * const load = new KeepAliveLoad(port, { connections: 8 });
 * await sleep(1000);
 * await load.stop();
 * console.log(String(load)); // 5310 ok, 0 failed [], 9 connections
 * ```
 */
export class KeepAliveLoad {
  ok = 0;
  failed = 0;
  /** Connections opened in all (each `Connection: close` costs one more). */
  opened = 0;
  /** Why requests failed, with counts. */
  readonly errors = new Map<string, number>();
  /** When the first failures came, in ms since the load started (at most 20). */
  readonly failedAt: number[] = [];
  /** `Date.now()` when the load started. */
  readonly startedAt = Date.now();
  readonly done: Promise<void>;
  #stopped = false;

  constructor(
    port: number,
    options: {
      connections?: number;
      path?: string;
      pauseMs?: number;
      total?: number;
      deadlineMs?: number;
    } = {},
  ) {
    const { connections = 8, path = "/", pauseMs = 0, total = Infinity } = options;
    let issued = 0;
    const end = Date.now() + (options.deadlineMs ?? 30_000);
    const fail = (why: string) => {
      this.failed++;
      this.errors.set(why, (this.errors.get(why) ?? 0) + 1);
      if (this.failedAt.length < 20) this.failedAt.push(Date.now() - this.startedAt);
    };
    const loop = async () => {
      let conn: Connection | undefined;
      while (!this.#stopped && Date.now() < end && issued < total) {
        issued++;
        if (conn === undefined || conn.ended) {
          try {
            conn = await Connection.open(port);
            this.opened++;
          } catch (e) {
            fail(`connect: ${(e as Error).message}`);
            await sleep(10);
            continue;
          }
        }
        try {
          const a = await conn.request(path);
          if (a.status === 200) this.ok++;
          else fail(`HTTP ${a.status}`);
        } catch (e) {
          fail((e as Error).message);
        }
        if (pauseMs > 0) await sleep(pauseMs);
      }
      conn?.socket.destroy();
    };
    this.done = Promise.all(Array.from({ length: connections }, loop)).then(() => {});
  }

  /** Stops sending and waits for the answers still due. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.done;
  }

  /** `ok`, `failed`, the reasons and the connections opened, for messages. */
  toString(): string {
    return `${this.ok} ok, ${this.failed} failed ${
      JSON.stringify([...this.errors])
    }, ${this.opened} connections`;
  }
}
