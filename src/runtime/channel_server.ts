/**
 * The master's end of the socket channels of Deno workers (see
 * `worker_io.ts` for why Deno workers do not get a Node IPC channel): one
 * Unix socket for all of them; each connection names its worker with the
 * token the master gave it, then carries one JSON message per line.
 *
 * The pairing of connections with workers lives in `channel_pairing.ts`,
 * the socket under it in `channel_socket.ts`.
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

import { chmodSync, mkdirSync } from "node:fs";
import {
  type ChannelEvents,
  type ChannelPeer,
  Pairing,
  Peer,
  TOKEN_DEADLINE_MS,
} from "./channel_pairing.ts";
import { listenChannelSocket } from "./channel_socket.ts";
import { assertPrivate, type FileId, fileId, removeIfSame } from "./private_path.ts";

export type { ChannelEvents, ChannelPeer } from "./channel_pairing.ts";
export { INBOX_HIGH_BYTES, READ_BUDGET } from "./channel_pairing.ts";
export { MAX_OUTBOX_BYTES } from "./channel_socket.ts";

/** The socket all Deno workers connect to. */
export interface ChannelServer {
  readonly path: string;
  /** Connections closed because their first line was no known token. */
  readonly rejected: number;
  /** Connections cut off because their peer left more than {@linkcode MAX_OUTBOX_BYTES} unread. */
  readonly cutOff: number;
  /** Times a connection was read no more until its backlog was dispatched. */
  readonly paused: number;
  /** Bytes of lines read from all connections and not yet dispatched. */
  readonly backlog: number;
  /** Expects `isolates` connections (1 by default) presenting `token`. */
  expect(token: string, events: ChannelEvents, isolates?: number): ChannelPeer;
  /** Stops listening, closes every connection and removes the socket file. */
  close(): void;
}

/**
 * Makes the directory of `path` (it must not exist: its name is the master's
 * alone, see `channelPath()`), private to this user, and listens on a Unix
 * socket at `path` in it for workers' channels. Closing removes the socket
 * and the directory, and nothing that replaced them.
 *
 * @throws {Error} When the directory exists already or the socket cannot be
 *   created (e.g. no such parent directory).
 *
 * @example
 * ```ts ignore
 * import { listenChannel } from "./channel_server.ts";
 * const server = listenChannel("/run/user/1000/forklift-channel-0123456789abcdef/channel.sock");
 * const peer = server.expect("token-of-worker-1", { message: (m) => console.log(m) });
 * ```
 */
export function listenChannel(
  path: string,
  options: {
    tokenDeadlineMs?: number;
    /** Told of each connection cut off for leaving `queued` bytes unread. */
    onCutOff?: (queued: number) => void;
  } = {},
): ChannelServer {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  // Not recursive: a directory that exists (another's, or a trap) is an error.
  mkdirSync(dir, { mode: 0o700 });
  const dirId = fileId(dir);
  let socketId: FileId | undefined;
  let stop: (() => void) | undefined;
  const pairing = new Pairing(options.tokenDeadlineMs ?? TOKEN_DEADLINE_MS);
  if (options.onCutOff) pairing.onCutOff = options.onCutOff;
  try {
    assertPrivate(dir, "directory");
    stop = listenChannelSocket(path, pairing);
    socketId = fileId(path);
    // The directory already keeps others out; the socket's mode follows the
    // umask: make it the owner's alone too, and check.
    chmodSync(path, 0o600);
    assertPrivate(path, "socket");
  } catch (e) {
    stop?.();
    removeIfSame(path, socketId, false);
    removeIfSame(dir, dirId, true);
    throw e;
  }
  let open = true;
  return {
    path,
    get rejected() {
      return pairing.rejected;
    },
    get cutOff() {
      return pairing.cutOff;
    },
    get paused() {
      return pairing.paused;
    },
    get backlog() {
      return pairing.backlog;
    },
    expect(token, events, isolates = 1) {
      const peer = new Peer(token, events, Math.max(1, isolates), (p) => {
        if (pairing.expected.get(p.token) === p) pairing.expected.delete(p.token);
      });
      pairing.expected.set(token, peer);
      return peer;
    },
    close() {
      if (!open) return;
      open = false;
      stop!();
      removeIfSame(path, socketId, false);
      removeIfSame(dir, dirId, true);
    },
  };
}

/** What a connection attempt says of a Unix socket file. */
export type SocketState = "live" | "stale" | "unknown";

function refused(error: unknown): boolean {
  const g = globalThis as any;
  if (g.Deno?.errors?.ConnectionRefused && error instanceof g.Deno.errors.ConnectionRefused) {
    return true;
  }
  return (error as { code?: unknown } | null)?.code === "ECONNREFUSED";
}

/**
 * Connects to the Unix socket at `path` and hangs up at once: `"live"` when a
 * listener accepted, `"stale"` when the kernel refused (the file outlived the
 * process that listened on it), `"unknown"` for anything else (no such file,
 * no permission).
 *
 * @example
 * ```ts ignore
 * import { probeSocket } from "./channel_server.ts";
 * if (await probeSocket("/tmp/forklift-channel-0123456789abcdef/channel.sock") === "stale") console.log("left behind");
 * ```
 */
export async function probeSocket(path: string): Promise<SocketState> {
  const g = globalThis as any;
  try {
    if (g.Bun !== undefined) {
      const socket = await g.Bun.connect({
        unix: path,
        socket: { data() {}, open() {}, close() {}, error() {}, connectError() {} },
      });
      socket.end();
    } else {
      const conn = await g.Deno.connect({ transport: "unix", path });
      conn.close();
    }
    return "live";
  } catch (error) {
    return refused(error) ? "stale" : "unknown";
  }
}

/**
 * Returns a fresh random token (128 bits, hex).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { channelToken } from "./channel_server.ts";
 * assert.ok(/^[0-9a-f]{32}$/.test(channelToken()));
 * ```
 */
export function channelToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
