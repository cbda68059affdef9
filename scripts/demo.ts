/**
 * The README's demo: resolves the example configuration and shows where each
 * value came from.
 *
 * Usage: deno task demo
 *
 * @module
 */
import { main } from "../src/cli/main.ts";
import process from "node:process";

const root = new URL("..", import.meta.url).pathname;
process.exitCode = await main(["config", "--origin", "-c", `${root}examples/forklift.ini`]);
