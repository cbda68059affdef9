/**
 * Headless Chromium driven over the DevTools protocol (a WebSocket to
 * `--remote-debugging-port`), for the dashboard's browser test: open a page,
 * evaluate expressions in it, take screenshots, and record every request it
 * made. The browser runs in its own process group with its own profile in a
 * temporary directory; `close()` kills the group by its leader's pid.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { needs } from "./tools.ts";

/** The Chromium executable: `FORKLIFT_TEST_CHROMIUM`, else `chromium` on the PATH. */
export const CHROMIUM = process.env.FORKLIFT_TEST_CHROMIUM ?? "chromium";

/** The `skip` option of a test that needs Chromium. */
export const NEEDS_CHROMIUM: string | false = needs(
  [CHROMIUM, "--headless", "--no-sandbox", "--version"],
  "needs chromium (Debian package chromium; .ci/run installs it)",
);

type Message = {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: unknown;
  error?: { message: string };
};

/** One page of a headless Chromium. */
export class Browser {
  readonly child: ChildProcess;
  readonly #profile: string;
  #ws?: WebSocket;
  #next = 1;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  /** Every URL the page requested, in order. */
  readonly requests: string[] = [];
  /** Console errors and uncaught exceptions of the page. */
  readonly errors: string[] = [];

  private constructor(child: ChildProcess, profile: string) {
    this.child = child;
    this.#profile = profile;
  }

  /** Starts Chromium, opens a blank page of `width`×`height` and attaches to it. */
  static async launch(width = 1280, height = 900, timeoutMs = 20_000): Promise<Browser> {
    const profile = mkdtempSync(`${tmpdir()}/forklift-chromium-`);
    const child = spawn(CHROMIUM, [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-extensions",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--hide-scrollbars",
      "--remote-debugging-port=0",
      "--remote-debugging-address=127.0.0.1",
      `--user-data-dir=${profile}`,
      `--window-size=${width},${height}`,
      "about:blank",
    ], { stdio: ["ignore", "ignore", "pipe"], detached: true });
    const b = new Browser(child, profile);
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let err = "";
        const timer = setTimeout(() => reject(new Error(`no DevTools port: ${err}`)), timeoutMs);
        child.stderr!.on("data", (d) => {
          err += d;
          const m = /DevTools listening on ws:\/\/[^:]+:(\d+)\//.exec(err);
          if (m) {
            clearTimeout(timer);
            resolve(Number(m[1]));
          }
        });
        child.on("exit", (code) => reject(new Error(`chromium exited (${code}): ${err}`)));
      });
      const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as Array<
        { type: string; webSocketDebuggerUrl: string }
      >;
      const page = targets.find((t) => t.type === "page");
      if (!page) throw new Error("chromium has no page");
      await b.#connect(page.webSocketDebuggerUrl);
      await b.send("Network.enable");
      await b.send("Page.enable");
      await b.send("Runtime.enable");
      await b.send("Emulation.setDeviceMetricsOverride", {
        width,
        height,
        deviceScaleFactor: 1,
        mobile: false,
      });
    } catch (e) {
      await b.close();
      throw e;
    }
    return b;
  }

  #connect(url: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      this.#ws = ws;
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
      ws.onclose = () => {
        for (const p of this.#pending.values()) p.reject(new Error("DevTools connection closed"));
        this.#pending.clear();
      };
      ws.onmessage = (event) => {
        const m = JSON.parse(String(event.data)) as Message;
        if (m.id !== undefined) {
          const p = this.#pending.get(m.id);
          this.#pending.delete(m.id);
          if (m.error) p?.reject(new Error(m.error.message));
          else p?.resolve(m.result);
        } else if (m.method === "Network.requestWillBeSent") {
          this.requests.push((m.params!.request as { url: string }).url);
        } else if (m.method === "Runtime.exceptionThrown") {
          this.errors.push(JSON.stringify(m.params!.exceptionDetails).slice(0, 500));
        } else if (m.method === "Runtime.consoleAPICalled" && m.params!.type === "error") {
          this.errors.push(JSON.stringify(m.params!.args).slice(0, 500));
        }
      };
    });
  }

  /** Sends a DevTools command; rejects after `timeoutMs`. */
  send(method: string, params: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<unknown> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${method} timed out`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.#ws!.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Evaluates `expression` in the page; resolves to its (JSON) value. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.send("Runtime.evaluate", { expression, returnByValue: true }) as {
      result: { value: T };
      exceptionDetails?: unknown;
    };
    if (r.exceptionDetails) throw new Error(`${expression}: ${JSON.stringify(r.exceptionDetails)}`);
    return r.result.value;
  }

  /** A PNG of the viewport. */
  async screenshot(): Promise<Uint8Array> {
    const r = await this.send("Page.captureScreenshot", { format: "png" }) as { data: string };
    return Uint8Array.from(atob(r.data), (c) => c.charCodeAt(0));
  }

  /** Kills the browser's process group and removes its profile. */
  async close(): Promise<void> {
    try {
      this.#ws?.close();
    } catch {
      // Already closed.
    }
    const pid = this.child.pid;
    if (pid !== undefined && this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once("exit", r));
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // Gone already.
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3_000))]);
    }
    rmSync(this.#profile, { recursive: true, force: true });
  }
}
