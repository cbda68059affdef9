/**
 * A logger that keeps every line it is given, rendered (`warn: Worker 1 …`),
 * for tests that check what a component logs.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";

/** A {@linkcode Logger} whose lines are in `lines`. */
export function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (message: string, props: Record<string, unknown> = {}) =>
    lines.push(`${level}: ${message.replace(/\{(\w+)\}/g, (_, k) => String(props[k]))}`);
  return {
    lines,
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    debug: at("debug"),
  } as unknown as Logger & { lines: string[] };
}
