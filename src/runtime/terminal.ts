/**
 * The terminal, as `forklift top` uses it: whether stdout is one, its size,
 * raw keys from stdin, and a way back to how it was. Both runtimes give
 * these through `node:process`; this is the one place that reaches them.
 *
 * @module
 */
import process from "node:process";

/** A terminal in raw mode with its screen taken over; {@linkcode Terminal.restore} gives it back. */
export interface Terminal {
  /** Columns and rows now. */
  size(): { columns: number; rows: number };
  /** Calls `listener` with every key pressed (a string of one or more characters). */
  onKey(listener: (key: string) => void): void;
  /** Calls `listener` when the window is resized. */
  onResize(listener: () => void): void;
  /** Writes to the screen. */
  write(text: string): void;
  /** Raw mode off, the cursor and the screen back as they were; safe to call more than once. */
  restore(): void;
}

/** Whether stdout and stdin are both a terminal (a live view can run). */
export function isInteractive(): boolean {
  return Boolean(process.stdout.isTTY && process.stdin.isTTY);
}

const ENTER = "\x1b[?1049h\x1b[?25l";
const LEAVE = "\x1b[?25h\x1b[?1049l";

/**
 * Takes over the terminal: raw keys, the alternate screen, no cursor. The
 * caller restores it on every way out (see {@linkcode Terminal.restore}).
 *
 * @example
 * ```ts ignore
 * import { isInteractive, openTerminal } from "./terminal.ts";
 * if (isInteractive()) {
 *   const t = openTerminal();
 *   t.onKey((k) => k === "q" && t.restore());
 * }
 * ```
 */
export function openTerminal(): Terminal {
  const stdin = process.stdin as typeof process.stdin & { setRawMode?(raw: boolean): void };
  const stdout = process.stdout;
  let restored = false;
  const keyListeners: Array<(key: string) => void> = [];
  const onData = (chunk: Uint8Array | string) => {
    const key = typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
    for (const l of keyListeners) l(key);
  };
  stdin.setRawMode?.(true);
  stdin.on("data", onData);
  stdin.resume();
  stdout.write(ENTER);
  const resizeListeners: Array<() => void> = [];
  const onResize = () => {
    for (const l of resizeListeners) l();
  };
  stdout.on("resize", onResize);
  return {
    size: () => ({ columns: stdout.columns || 80, rows: stdout.rows || 24 }),
    onKey: (listener) => void keyListeners.push(listener),
    onResize: (listener) => void resizeListeners.push(listener),
    write: (text) => void stdout.write(text),
    restore() {
      if (restored) return;
      restored = true;
      stdout.off("resize", onResize);
      stdin.off("data", onData);
      try {
        stdin.setRawMode?.(false);
      } catch {
        // stdin already closed: nothing left to restore there.
      }
      stdin.pause();
      stdout.write(LEAVE);
    },
  };
}

/**
 * Sends `signal` to process `pid`; false when there is no such process or
 * it may not be signalled.
 *
 * @example
 * ```ts ignore
 * import { signalProcess } from "./terminal.ts";
 * signalProcess(1234, "SIGHUP");
 * ```
 */
export function signalProcess(pid: number, signal: "SIGHUP" | "SIGTTIN" | "SIGTTOU"): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}
