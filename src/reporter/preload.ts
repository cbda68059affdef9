/**
 * The module forklift injects into every worker before the program's own main
 * module (`deno run --preload` / `BUN_OPTIONS=--preload`). It starts the
 * process's reporter: under forklift it hooks `Deno.serve` / `Bun.serve` and
 * sends `hello`; it arms no timer.
 *
 * @example Inject by hand
 * ```ts ignore
 * // deno run -A --unstable-net --preload ./src/reporter/preload.ts server.ts
 * // BUN_OPTIONS="--preload=./src/reporter/preload.ts" bun server.ts
 * import "./preload.ts";
 * ```
 *
 * @module
 */

import { getReporter } from "./reporter.ts";

// forklift starts Deno workers with --unstable-net next to this preload, so
// servers may share their port on either runtime.
getReporter().start({ sharePort: true });
