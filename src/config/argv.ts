/**
 * The command line: a command, the flags of every setting (derived from the
 * registry), each command's own switches, and for `run` the program to start.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError, hint } from "./errors.ts";
import { type Setting, SETTINGS } from "./settings.ts";

/** Commands and their own switches (beyond every setting's flag). */
export const COMMANDS = {
  run: ["dry-run"],
  config: ["origin", "json"],
  check: ["connect"],
  status: ["json"],
  top: ["once"],
  version: [],
  help: [],
} as const satisfies Record<string, readonly string[]>;

/** A command name. */
export type CommandName = keyof typeof COMMANDS;

const ALIASES: Record<string, CommandName> = { "run-program": "run" };

/** A setting's value as given on the command line, before parsing. */
export interface FlagValue {
  /** Raw text; for repeatable flags, the values joined by `,`. */
  raw: string;
  /** The flag as written, e.g. `--workers` or `-w`. */
  flag: string;
}

/** The parsed command line. */
export interface CommandLine {
  command: CommandName;
  /** Raw setting values from flags, by setting name. */
  flags: Map<string, FlagValue>;
  /** `-c/--config`. */
  config?: string;
  /** `-e/--environment`. */
  environment?: string;
  /** The command's own switches that were given. */
  switches: Set<string>;
  /** `--help` was given. */
  help: boolean;
  /** Positional arguments: the program for `run`, the topic for `help`. */
  rest: string[];
}

interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  setting?: Setting;
  negates?: Setting;
}

function optionTable(command: CommandName): Map<string, OptionSpec> {
  const t = new Map<string, OptionSpec>();
  for (const s of SETTINGS) {
    const name = s.flag.slice(2);
    if (s.type === "boolean") {
      t.set(name, { type: "boolean", setting: s });
      t.set(`no-${name}`, { type: "boolean", negates: s });
    } else {
      t.set(name, { type: "string", short: s.short, multiple: s.repeatable, setting: s });
    }
  }
  t.set("config", { type: "string", short: "c" });
  t.set("environment", { type: "string", short: "e" });
  t.set("help", { type: "boolean", short: "h" });
  for (const sw of COMMANDS[command]) t.set(sw, { type: "boolean" });
  return t;
}

/** Splits `run`'s argv where the program starts: at `--` or the first non-option word. */
function splitProgram(args: string[], table: Map<string, OptionSpec>): [string[], string[]] {
  const shortTakesValue = new Set(
    [...table.values()].filter((o) => o.type === "string" && o.short).map((o) => o.short),
  );
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") return [args.slice(0, i), args.slice(i + 1)];
    if (a.startsWith("--")) {
      if (!a.includes("=") && table.get(a.slice(2))?.type === "string") i++;
    } else if (a.startsWith("-") && a.length > 1) {
      if (a.length === 2 && shortTakesValue.has(a[1])) i++;
    } else {
      return [args.slice(0, i), args.slice(i)];
    }
  }
  return [args, []];
}

/**
 * Parses forklift's argv (without the program name).
 *
 * @example Parse a run command line
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommandLine } from "./argv.ts";
 * const cl = parseCommandLine(["run", "-w", "4", "--", "deno", "run", "-A", "server.ts"]);
 * assert.ok(cl.flags.get("workers")!.raw === "4" && cl.rest[0] === "deno");
 * ```
 */
export function parseCommandLine(argv: string[]): CommandLine {
  // `deno task cli -- run …` hands the separator on: before any command it means nothing.
  let args = argv[0] === "--" ? argv.slice(1) : [...argv];
  let command: CommandName;
  let helpFlag = false;
  const first = args[0];
  if (first === undefined || first === "--help" || first === "-h") {
    command = "help";
    args = args.slice(1);
  } else if (first === "--version" || first === "-V") {
    command = "version";
    args = args.slice(1);
  } else if (Object.hasOwn(COMMANDS, first) || Object.hasOwn(ALIASES, first)) {
    // Own keys only: "constructor" or "__proto__" is no command.
    command = Object.hasOwn(ALIASES, first) ? ALIASES[first] : (first as CommandName);
    args = args.slice(1);
  } else if (first.startsWith("-")) {
    throw new ConfigError(
      `Missing command before ${first}: try "forklift run ${first} …" or "forklift help"`,
    );
  } else {
    throw new ConfigError(
      `Unknown command "${first}"${
        hint(first, [...Object.keys(COMMANDS), ...Object.keys(ALIASES)], (s) => `"${s}"`)
      }; "forklift help" lists the commands`,
    );
  }

  const table = optionTable(command);
  let program: string[] = [];
  // `check` takes the program too, to name the service as `run` would.
  if (command === "run" || command === "check") [args, program] = splitProgram(args, table);

  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  for (const [name, o] of table) {
    options[name] = {
      type: o.type,
      ...(o.short ? { short: o.short } : {}),
      multiple: !!o.multiple,
    };
  }
  let tokens;
  try {
    ({ tokens } = parseArgs({
      args,
      options,
      strict: false,
      allowPositionals: true,
      tokens: true,
    }));
  } catch (e) {
    throw new ConfigError(`Cannot parse the command line: ${(e as Error).message}`, { cause: e });
  }

  const flags = new Map<string, FlagValue>();
  const switches = new Set<string>();
  const rest: string[] = [...program];
  let config: string | undefined;
  let environment: string | undefined;
  const positionals: string[] = [];
  for (const tok of tokens ?? []) {
    if (tok.kind === "positional") {
      positionals.push(tok.value);
      continue;
    }
    if (tok.kind !== "option") continue;
    const spec = table.get(tok.name);
    if (!spec) {
      const known = [...table.keys()].map((k) => `--${k}`);
      throw new ConfigError(
        `Unknown flag ${tok.rawName} for "forklift ${command}"${hint(`--${tok.name}`, known)}`,
      );
    }
    if (spec.type === "string" && (tok.value === undefined || tok.value === "")) {
      const meta = spec.setting?.meta ?? "VALUE";
      throw new ConfigError(`Flag ${tok.rawName} needs a value (${tok.rawName} ${meta})`);
    }
    if (spec.type === "boolean" && tok.value !== undefined && !spec.setting) {
      throw new ConfigError(`Flag ${tok.rawName} takes no value, got "${tok.value}"`);
    }
    const rawName = tok.rawName.startsWith("--") ? tok.rawName : `--${tok.name}`;
    if (spec.setting) {
      const raw = spec.type === "boolean" ? (tok.value ?? "true") : tok.value!;
      const prev = flags.get(spec.setting.name);
      flags.set(spec.setting.name, {
        raw: spec.multiple && prev ? `${prev.raw},${raw}` : raw,
        flag: tok.rawName === `-${spec.short}` ? `${tok.rawName}` : rawName,
      });
    } else if (spec.negates) {
      flags.set(spec.negates.name, { raw: "false", flag: rawName });
    } else if (tok.name === "config") config = tok.value;
    else if (tok.name === "environment") environment = tok.value;
    else if (tok.name === "help") helpFlag = true;
    else switches.add(tok.name);
  }

  if (command === "help" || helpFlag) {
    rest.push(...positionals);
  } else if (positionals.length > 0) {
    throw new ConfigError(
      `Unexpected argument "${positionals[0]}" for "forklift ${command}"`,
    );
  }
  return { command, flags, config, environment, switches, help: helpFlag, rest };
}
