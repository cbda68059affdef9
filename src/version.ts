/**
 * forklift's version, shown by `forklift version` and in `/status`.
 *
 * @example
 * ```ts
 * import { VERSION } from "./version.ts";
 * console.log(`forklift ${VERSION}`);
 * ```
 */
export const VERSION = "0.1.0";
