/**
 * Ports and waits for tests (the benchmarks use them too): a port free on
 * every address, drawn where the kernel hands out none of its own.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** Whether a listener can take `port` on every address now (it is closed again at once). */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.on("error", () => resolve(false));
    s.listen(port, () => s.close(() => resolve(true)));
  });
}

/**
 * A TCP port free on every address, drawn below the kernel's ephemeral range:
 * a port the kernel hands out (a listener on port 0, an outgoing connection)
 * could otherwise take it between this check and the server's bind.
 */
export async function freePort(): Promise<number> {
  let low = 32768;
  try {
    low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").split(/\s+/)[0]);
  } catch {
    // Linux's default range.
  }
  const from = 10_000;
  for (let i = 0; i < 64 && low > from; i++) {
    const port = from + Math.floor(Math.random() * (low - from));
    if (await bindable(port)) return port;
  }
  return await new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
