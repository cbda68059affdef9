/**
 * Finds the program `forklift run` was asked to start, the way a shell would,
 * and names it for the `service.name` resource.
 *
 * @module
 */
import { accessSync, constants, statSync } from "node:fs";
import { basename, delimiter, isAbsolute, resolve } from "node:path";

/** Exit code when the command cannot be found (as a shell). */
export const EXIT_NOT_FOUND = 127;
/** Exit code when the command exists but cannot be executed (as a shell). */
export const EXIT_NOT_EXECUTABLE = 126;

/** A command that cannot be started; carries the shell's exit code. */
export class CommandError extends Error {
  readonly exitCode: number;

  constructor(message: string, exitCode: number) {
    super(message);
    this.name = "CommandError";
    this.exitCode = exitCode;
  }
}

function executable(path: string): "ok" | "missing" | "not-executable" {
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch {
    return "missing";
  }
  if (!isFile) return "not-executable";
  try {
    accessSync(path, constants.X_OK);
    return "ok";
  } catch {
    return "not-executable";
  }
}

/**
 * Resolves `command` to an executable path: as given when it holds a slash,
 * else the first match on `PATH`. Throws a {@linkcode CommandError} with exit
 * code 127 (not found) or 126 (not executable).
 *
 * @example Find deno on PATH
 * ```ts ignore
 * import { resolveCommand } from "./command.ts";
 * const path = resolveCommand("deno", process.env.PATH ?? "", process.cwd());
 * ```
 */
export function resolveCommand(command: string, pathEnv: string, cwd: string): string {
  if (command === "") throw new CommandError("Command not found: empty command", EXIT_NOT_FOUND);
  if (command.includes("/")) {
    const path = isAbsolute(command) ? command : resolve(cwd, command);
    const state = executable(path);
    if (state === "missing") {
      throw new CommandError(`Command not found: ${command} (no such file)`, EXIT_NOT_FOUND);
    }
    if (state === "not-executable") {
      throw new CommandError(
        `Command not executable: ${command} (not a file with execute permission)`,
        EXIT_NOT_EXECUTABLE,
      );
    }
    return path;
  }
  let denied: string | undefined;
  for (const dir of pathEnv.split(delimiter)) {
    const path = resolve(cwd, dir || ".", command);
    const state = executable(path);
    if (state === "ok") return path;
    if (state === "not-executable") denied ??= path;
  }
  if (denied !== undefined) {
    throw new CommandError(
      `Command not executable: ${command} (${denied} lacks execute permission)`,
      EXIT_NOT_EXECUTABLE,
    );
  }
  throw new CommandError(`Command not found: ${command} (searched PATH)`, EXIT_NOT_FOUND);
}

const SCRIPT = /\.(m|c)?(t|j)sx?$/;

/**
 * The program's name for `service.name`: the script's base name without its
 * extension (`server.ts` → `server`), else the command's base name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { programName } from "./command.ts";
 * assert.ok(programName(["deno", "run", "-A", "src/server.ts"]) === "server");
 * ```
 */
export function programName(argv: string[]): string {
  const script = argv.slice(1).find((a) => !a.startsWith("-") && SCRIPT.test(a));
  if (script) return basename(script).replace(SCRIPT, "");
  return basename(argv[0] ?? "program");
}
