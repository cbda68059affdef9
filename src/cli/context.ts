/**
 * What every command receives: the runtime, the parsed command line and the
 * resolved settings.
 *
 * @module
 */
import type { CommandLine } from "../config/argv.ts";
import type { ResolvedSettings } from "../config/load.ts";
import type { Runtime } from "../runtime/runtime.ts";

/** The inputs of a command. */
export interface CommandContext {
  runtime: Runtime;
  commandLine: CommandLine;
  settings: ResolvedSettings;
  /** Writes to stdout. */
  print(text: string): void;
}

/** A command's entry point; resolves to the process exit code. */
export type Command = (ctx: CommandContext) => Promise<number>;
