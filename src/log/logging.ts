/**
 * Sets up LogTape for the master: one sink on stderr, `text` for people or
 * `json` (one object per line) for log collectors.
 *
 * @module
 */
import process from "node:process";
import {
  configureSync,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogLevel,
  resetSync,
  type Sink,
} from "@logtape/logtape";

/** Options of {@linkcode setupLogging}. */
export interface LoggingOptions {
  level: "debug" | "info" | "warning" | "error";
  format: "text" | "json";
  /** Where records go; stderr when omitted. */
  write?: (line: string) => void;
}

/**
 * Configures logging for the `forklift` category. Safe to call again (a HUP
 * reload may change the level or format).
 *
 * @example Log as JSON lines
 * ```ts
 * import { setupLogging, logger } from "./logging.ts";
 * setupLogging({ level: "info", format: "json" });
 * logger("arbiter").info("Booting worker {slot}", { slot: 1 });
 * ```
 */
export function setupLogging(options: LoggingOptions): void {
  const format = options.format === "json"
    ? getJsonLinesFormatter()
    : getTextFormatter({ timestamp: "date-time-timezone", value: "bare", category: "." });
  const write = options.write ?? ((line: string) => void process.stderr.write(line));
  const sink: Sink = (record) => write(format(record));
  resetSync();
  configureSync({
    sinks: { stderr: sink },
    loggers: [
      { category: ["forklift"], lowestLevel: options.level as LogLevel, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

/**
 * A logger under the `forklift` category.
 *
 * @example
 * ```ts
 * import { logger } from "./logging.ts";
 * logger("config").debug("Loaded {file}", { file: "forklift.ini" });
 * ```
 */
export function logger(...category: string[]): Logger {
  return getLogger(["forklift", ...category]);
}
