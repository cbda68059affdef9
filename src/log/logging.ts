/**
 * Sets up LogTape for the master: one sink, on stderr or appended to a log
 * file, `text` for people or `json` (one object per line) for collectors.
 *
 * @module
 */
import { closeSync, writeSync } from "node:fs";
import type { Config } from "../config/config.ts";
import { openNoFollow } from "./open_file.ts";
import { writeTo } from "./write.ts";
import {
  configureSync,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogLevel,
  type LogRecord,
  resetSync,
  type Sink,
} from "@logtape/logtape";

/** Options of {@linkcode setupLogging}. */
export interface LoggingOptions {
  level: "debug" | "info" | "warning" | "error";
  format: "text" | "json";
  /** Append to this file instead of writing to stderr. */
  file?: string | null;
  /** Where records go when there is no file; stderr when omitted. */
  write?: (line: string) => void;
}

/**
 * The logging options that settings values ask for.
 *
 * @example
 * ```ts
 * import { loggingOptions } from "./logging.ts";
 * import assert from "node:assert/strict";
 * import { typedConfig } from "../config/config.ts";
 * const options = loggingOptions(typedConfig({ log_format: "json" }));
 * assert.deepEqual(options, { level: "info", format: "json", file: null });
 * ```
 */
export function loggingOptions(
  config: Pick<Config, "logLevel" | "logFormat" | "logFile">,
): LoggingOptions {
  return { level: config.logLevel, format: config.logFormat, file: config.logFile };
}

// Values in text records as a person reads them; never util.inspect, which
// costs milliseconds to load on the master's start-up path.
function plain(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || value == null) {
    return String(value);
  }
  if (value instanceof Error) return value.message;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

// The JSON Lines formatter renders the message's values as JSON (a string in
// quotes); its "message" is for people, so values go in as the text format
// writes them, and stay typed under "properties".
function jsonLines(): (record: LogRecord) => string {
  const json = getJsonLinesFormatter();
  return (record) =>
    json({
      ...record,
      message: [record.message.map((part, i) => i % 2 === 1 ? plain(part) : part).join("")],
    });
}

let fd: number | undefined;
let path: string | undefined;

function openLog(file: string): void {
  const next = openNoFollow(file, "append");
  if (fd !== undefined) closeSync(fd);
  fd = next;
  path = file;
}

/**
 * Configures logging for the `forklift` category. Safe to call again (a HUP
 * reload may change the level, format or file). Throws when the log file
 * cannot be opened, or is a symbolic link (never followed).
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
    ? jsonLines()
    : getTextFormatter({ timestamp: "date-time-timezone", value: plain, category: "." });
  if (options.file) {
    if (options.file !== path) openLog(options.file);
  } else if (fd !== undefined) {
    closeSync(fd);
    fd = path = undefined;
  }
  const toStderr = options.write ?? ((line: string) => writeTo(2, line));
  const sink: Sink = (record) => {
    const line = format(record);
    if (fd === undefined) return toStderr(line);
    try {
      writeSync(fd, line);
    } catch {
      toStderr(line);
    }
  };
  resetSync();
  configureSync({
    sinks: { main: sink },
    loggers: [
      { category: ["forklift"], lowestLevel: options.level as LogLevel, sinks: ["main"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
    ],
  });
}

/**
 * Reopens the log file (after logrotate moved it); a no-op on stderr. Returns
 * the error message when the file cannot be reopened (logging goes on to the
 * old file).
 *
 * @example
 * ```ts
 * import { reopenLogFile } from "./logging.ts";
 * reopenLogFile();
 * ```
 */
export function reopenLogFile(): string | undefined {
  if (path === undefined) return undefined;
  try {
    openLog(path);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
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
