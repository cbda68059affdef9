/**
 * forklift's version, shown by `forklift version`, in `/status` and as the
 * instrumentation scope's version of every OTLP export (the reporter's too).
 *
 * @example
 * ```ts
 * import { VERSION } from "./version.ts";
 * console.log(`forklift ${VERSION}`);
 * ```
 */
export const VERSION = "0.1.0";
