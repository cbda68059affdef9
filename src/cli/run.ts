/**
 * `forklift run`: not available yet in this build.
 *
 * @module
 */
import type { CommandContext } from "./context.ts";

/**
 * Runs `forklift run`.
 *
 * @example
 * ```ts ignore
 * import { runCommand } from "./run.ts";
 * await runCommand(ctx);
 * ```
 */
export function runCommand(_ctx: CommandContext): Promise<number> {
  console.error(
    "forklift: run is not implemented yet in this build; config, check and status work",
  );
  return Promise.resolve(1);
}
