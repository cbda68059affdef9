/**
 * forklift's version, shown by `forklift version`, in `/status` and as the
 * instrumentation scope's version of every OTLP export (the reporter's too).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { VERSION } from "./version.ts";
 * assert.match(VERSION, /^\d+\.\d+\.\d+/);
 * ```
 */
export const VERSION = "0.1.0";
