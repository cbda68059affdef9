/**
 * Resolves `npm start`, `bun run SCRIPT`, `pnpm start`, `yarn SCRIPT` and the
 * like to the package.json script's own command, so that the server, not the
 * package manager or its shell, is forklift's worker.
 *
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, delimiter, dirname, resolve } from "node:path";
import { ConfigError } from "../config/errors.ts";
import { CommandError, resolveCommand } from "./command.ts";

/** The command a script stands for, ready to be planned as the worker. */
export interface ScriptCommand {
  /** The script's program (resolved to a path) and its arguments, then the user's. */
  argv: string[];
  /** What the package manager would set: PATH with node_modules/.bin, npm_* and the script's own `NAME=value` words. */
  env: Record<string, string>;
}

/** npm's aliases of `run`. */
const NPM_RUN = new Set(["run", "run-script", "rum", "urn"]);

/** Package managers that run a `pre<NAME>` script before `NAME` and `post<NAME>` after. */
const RUNS_PRE_POST = new Set(["npm", "yarn", "bun", "deno"]);

type Manager = "npm" | "pnpm" | "yarn" | "bun" | "deno";

/** Shell syntax that a word split cannot stand for: pipes, lists, redirections, quotes, expansions. */
const SHELL_SYNTAX = /[|&;<>$`'"\\(){}*?[\]~#!]/;

function managerOf(exe: string): Manager | undefined {
  const name = exe.replace(/\.(exe|cmd|js|cjs)$/, "");
  return name === "npm" || name === "pnpm" || name === "yarn" || name === "bun" || name === "deno"
    ? name
    : undefined;
}

function readScripts(
  cwd: string,
): { scripts: Record<string, string>; pkg: Record<string, unknown> } | undefined {
  let text: string;
  try {
    text = readFileSync(`${cwd}/package.json`, "utf8");
  } catch {
    return undefined;
  }
  let pkg: unknown;
  try {
    pkg = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`Cannot read ${cwd}/package.json: ${(e as Error).message}`);
  }
  if (typeof pkg !== "object" || pkg === null) return undefined;
  const raw = (pkg as { scripts?: unknown }).scripts;
  // No prototype: a script asked for as `constructor` or `__proto__` is only a name.
  const scripts: Record<string, string> = Object.create(null);
  if (typeof raw === "object" && raw !== null) {
    for (const [k, v] of Object.entries(raw)) if (typeof v === "string") scripts[k] = v;
  }
  return { scripts, pkg: pkg as Record<string, unknown> };
}

/** Which script `argv` asks the package manager to run, and the arguments it passes on. */
function requested(
  manager: Manager,
  args: string[],
  scripts: Record<string, string> | undefined,
): { name: string; rest: string[]; bunFlag: boolean; flags?: string[] } | undefined {
  let i = 0;
  let bunFlag = false;
  if (manager === "bun") {
    // `bun --bun run start`, `bun run --bun start`: --bun makes `node` in the script bun.
    const flags: string[] = [];
    const take = () => {
      for (; args[i]?.startsWith("-"); i++) {
        if (args[i] === "--bun") bunFlag = true;
        else flags.push(args[i]);
      }
    };
    take();
    if (args[i] === "run") i++;
    take();
    const name = args[i];
    // `bun NAME` runs a file when NAME is not a script: that is not ours to resolve.
    if (name === undefined || scripts === undefined || !(name in scripts)) return undefined;
    return { name, rest: args.slice(i + 1), bunFlag, flags };
  }
  const sub = args[0];
  if (sub === undefined) return undefined;
  if (manager === "deno") {
    // `deno task NAME` runs package.json's script where deno.json has no such task.
    const name = args[1];
    if (sub !== "task" || name === undefined || scripts === undefined || !(name in scripts)) {
      return undefined;
    }
    return { name, rest: args.slice(2), bunFlag };
  }
  if (sub === "start") return { name: "start", rest: args.slice(1), bunFlag };
  if (NPM_RUN.has(sub) && (manager === "npm" || sub === "run")) {
    return args[1] === undefined ? undefined : { name: args[1], rest: args.slice(2), bunFlag };
  }
  // pnpm and yarn run a script named as their first argument, where it is not one of their commands.
  if (manager !== "npm" && scripts !== undefined && sub in scripts) {
    return { name: sub, rest: args.slice(1), bunFlag };
  }
  return undefined;
}

/** PATH as a package manager gives a script: node_modules/.bin of the package and each directory above it first. */
function scriptPath(pkgDir: string, path: string): string {
  const bins: string[] = [];
  for (let dir = pkgDir;; dir = dirname(dir)) {
    bins.push(`${dir}/node_modules/.bin`.replace(/^\/\//, "/"));
    if (dirname(dir) === dir) break;
  }
  return [...bins, ...(path ? [path] : [])].join(delimiter);
}

/**
 * The command behind `npm start`, `npm run NAME`, `pnpm start|run NAME|NAME`,
 * `yarn start|run NAME|NAME`, `bun start|run NAME|NAME` and `deno task NAME`
 * (the caller checks deno.json first), read from package.json in `cwd`;
 * undefined when `argv` asks for no script. Throws a
 * {@linkcode ConfigError}, naming the command to give instead, for a script
 * that a word split cannot stand for (a pipe, `&&`, quotes, a `pre`/`post`
 * script the package manager would also run).
 *
 * @example Resolve `npm start`
 * ```ts ignore
 * import { packageScript } from "./package_script.ts";
 * // package.json: { "scripts": { "start": "bun server.ts" } }
 * const cmd = packageScript(["/usr/bin/npm", "start"], { cwd: ".", env: process.env });
 * // cmd.argv: ["/usr/local/bin/bun", "server.ts"]; cmd.env: PATH, npm_lifecycle_event, ...
 * ```
 */
export function packageScript(
  argv: string[],
  options: { cwd: string; env: Record<string, string | undefined> },
): ScriptCommand | undefined {
  const manager = managerOf(basename(argv[0] ?? ""));
  if (manager === undefined) return undefined;
  const cwd = resolve(options.cwd);
  const found = readScripts(cwd);
  const ask = requested(manager, argv.slice(1), found?.scripts);
  if (ask === undefined) return undefined;
  const what = `${basename(argv[0])} ${argv.slice(1).join(" ")}`.trim();
  const example = manager === "deno" ? "deno run -A main.ts" : "bun server.ts";
  const refuse = (why: string, instead: string) =>
    new ConfigError(
      `Cannot preload the reporter through "${what}": ${why}; ` +
        `give the server's own command instead (${instead}), or add --no-inject`,
    );
  if (found === undefined) {
    throw refuse(`there is no package.json in ${cwd}`, `forklift run -- ${example}`);
  }
  const { scripts, pkg } = found;
  let command = scripts[ask.name];
  if (command === undefined && ask.name === "start" && manager !== "bun") {
    // npm's (and pnpm's) default start script.
    if (existsSync(`${cwd}/server.js`)) command = "node server.js";
  }
  if (command === undefined) {
    throw refuse(`package.json has no "${ask.name}" script`, `forklift run -- ${example}`);
  }
  const rest = ask.rest[0] === "--" ? ask.rest.slice(1) : ask.rest;
  if (SHELL_SYNTAX.test(command) || command.trim() === "") {
    throw refuse(
      `the "${ask.name}" script (${command}) needs a shell, which would make the server a grandchild of forklift`,
      `forklift run -- ${example}`,
    );
  }
  const words = command.trim().split(/\s+/);
  const env: Record<string, string> = {};
  // `NODE_ENV=production node server.js`: leading assignments are the program's environment.
  while (words.length > 1 && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0])) {
    const word = words.shift()!;
    const eq = word.indexOf("=");
    env[word.slice(0, eq)] = word.slice(eq + 1);
  }
  const instead = (program: string[]) =>
    [...Object.entries(env).map(([k, v]) => `${k}=${v}`), "forklift run --", ...program, ...rest]
      .join(" ");
  if (ask.flags !== undefined && ask.flags.length > 0) {
    throw refuse(
      `bun's options (${
        ask.flags.join(" ")
      }) would apply to the bun that runs the script, not to the server`,
      instead(words[0] === "bun" ? ["bun", ...ask.flags, ...words.slice(1)] : words),
    );
  }
  if (RUNS_PRE_POST.has(manager)) {
    const extra = [`pre${ask.name}`, `post${ask.name}`].filter((s) => s in scripts);
    if (extra.length > 0) {
      throw refuse(
        `${manager} also runs the "${extra.join('" and "')}" script${
          extra.length > 1 ? "s" : ""
        }, which forklift would not (run ${extra.length > 1 ? "them" : "it"} yourself)`,
        instead(words),
      );
    }
  }
  const path = scriptPath(cwd, options.env.PATH ?? "");
  let program: string;
  if (words[0] === "node" && manager === "bun" && (ask.bunFlag || !onPath("node", path, cwd))) {
    // bun runs `node` as itself under --bun, or when there is no node.
    program = argv[0];
  } else {
    try {
      program = resolveCommand(words[0], path, cwd);
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
      throw new CommandError(
        `${e.message}, in the "${ask.name}" script of ${cwd}/package.json`,
        e.exitCode,
      );
    }
  }
  const name = typeof pkg.name === "string" ? pkg.name : undefined;
  const version = typeof pkg.version === "string" ? pkg.version : undefined;
  return {
    argv: [program, ...words.slice(1), ...rest],
    env: {
      PATH: path,
      INIT_CWD: cwd,
      npm_lifecycle_event: ask.name,
      npm_lifecycle_script: command,
      npm_package_json: `${cwd}/package.json`,
      ...(name === undefined ? {} : { npm_package_name: name }),
      ...(version === undefined ? {} : { npm_package_version: version }),
      npm_execpath: argv[0],
      ...env,
    },
  };
}

function onPath(command: string, path: string, cwd: string): boolean {
  try {
    resolveCommand(command, path, cwd);
    return true;
  } catch {
    return false;
  }
}
