/**
 * The forklift binary's entry point: parse the command line, resolve the
 * settings, set up logging and run one command. Commands load lazily so that
 * `run` pulls in only what supervising needs.
 *
 * @module
 */
import process from "node:process";
import { type CommandName, parseCommandLine } from "../config/argv.ts";
import { ConfigError, EXIT_USAGE } from "../config/errors.ts";
import { loadSettings, type ResolvedSettings } from "../config/load.ts";
import { describeReadError } from "../config/ini_file.ts";
import { flushOutput } from "../log/write.ts";
import { currentRuntime, type Runtime } from "../runtime/runtime.ts";
import { VERSION } from "../protocol/version.ts";
import type { Command } from "./context.ts";

const LOADERS: Record<Exclude<CommandName, "help" | "version">, () => Promise<Command>> = {
  run: async () => (await import("./run.ts")).runCommand,
  config: async () => (await import("./config.ts")).configCommand,
  check: async () => (await import("./check.ts")).checkCommand,
  status: async () => (await import("./status.ts")).statusCommand,
  top: async () => (await import("./top.ts")).topCommand,
};

function print(text: string): void {
  process.stdout.write(text);
}

/**
 * Runs forklift with `argv` and resolves to the exit code. Usage and
 * configuration errors print one line on stderr and give exit code 2.
 *
 * @example Print the effective config
 * ```ts ignore
 * import { main } from "./main.ts";
 * const code = await main(["config", "--origin"]);
 * ```
 */
export async function main(argv?: string[], runtime: Runtime = currentRuntime()): Promise<number> {
  let settings: ResolvedSettings | undefined;
  try {
    const commandLine = parseCommandLine(argv ?? runtime.args());
    const { command } = commandLine;
    if (command === "help" || commandLine.help) {
      const { helpText } = await import("./help.ts");
      const topic = command === "help" ? commandLine.rest[0] : command;
      print(helpText(topic));
      return 0;
    }
    if (command === "version") {
      print(`forklift ${VERSION} (${runtime.name} ${runtime.version})\n`);
      return 0;
    }
    settings = loadSettings({
      flags: commandLine.flags,
      config: commandLine.config,
      environment: commandLine.environment,
      env: runtime.env(),
      cwd: runtime.cwd(),
      cpuCount: runtime.cpuCount(),
    });
    const { loggingOptions, setupLogging } = await import("../log/logging.ts");
    // Only the long-running master writes to the log file; other commands talk to a person.
    const logging = loggingOptions(settings.config);
    if (command !== "run") logging.file = null;
    try {
      setupLogging(logging);
    } catch (e) {
      throw new ConfigError(`Cannot open log file ${logging.file}: ${describeReadError(e)}`);
    }
    const run = await LOADERS[command]();
    return await run({ runtime, commandLine, settings, print });
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`forklift: ${e.message}`);
      return e.exitCode ?? EXIT_USAGE;
    }
    const err = e as Error & { exitCode?: number };
    if (typeof err?.exitCode === "number") {
      console.error(`forklift: ${err.message}`);
      return err.exitCode;
    }
    console.error(`forklift: internal error: ${err?.message ?? String(e)}`);
    // The level as resolved (flag, file or environment), or as the environment
    // says when the settings themselves failed.
    const level = settings?.config.logLevel ?? runtime.env().FORKLIFT_LOG_LEVEL;
    if (level === "debug") console.error(err?.stack);
    return 1;
  }
}

if (import.meta.main) {
  const runtime = currentRuntime();
  const code = await main(undefined, runtime);
  // What the master wrote last (its exit line) goes out, unless no one reads it.
  await flushOutput(1_000);
  runtime.exit(code);
}
