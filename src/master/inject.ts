/**
 * Plans how each worker is started: the argv and the environment changes that
 * preload the reporter into `deno` and `bun` programs, and leave any other
 * program as it is.
 *
 * @module
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { availableParallelism } from "node:os";
import { basename, dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError } from "../config/errors.ts";
import { packageScript } from "./package_script.ts";
import { CHANNEL_ENV_NAMES, ISOLATES_ENV, WORKER_ENV_NAMES } from "../protocol/env.ts";

/** How a worker is started, apart from its per-worker variables. */
export interface LaunchPlan {
  /** The argv to execute (argv[0] resolved by the caller). */
  argv: string[];
  /** Variables to set (beyond the per-worker ones). */
  env: Record<string, string>;
  /** Whether the reporter is preloaded. */
  injected: boolean;
  /** Which runtime the program runs on, when forklift knows it. */
  runtime: "deno" | "bun" | "other";
  /**
   * The socket the workers talk to the master over, instead of a Node IPC
   * channel: set for injected Deno and Bun programs (see `src/runtime/worker_io.ts`).
   */
  channel?: string;
  /** Isolates in each worker, each with its own reporter (`deno serve --parallel`); 1 when absent. */
  isolates?: number;
}

/** Options of {@linkcode planLaunch}. */
export interface PlanOptions {
  /** Preload the reporter. */
  inject: boolean;
  /** Absolute path of the reporter's preload module. */
  preload: string;
  /** The preload for Bun programs, when it differs (a build with bytecode). */
  bunPreload?: string;
  /** The master's environment (for an existing BUN_OPTIONS). */
  env: Record<string, string | undefined>;
  /** Directory to look for deno.json in, for `deno task`. */
  cwd: string;
  /** Socket path for injected workers' channel; without it they get a Node IPC channel. */
  channel?: string;
}

/** Whether `flags` grant a whole permission (`-A`, or the bare flag or its short form). */
function grants(flags: string[], long: string, short: string): boolean {
  return flags.some((f) => f === "-A" || f === "--allow-all" || f === long || f === short);
}

function denoFlags(preload: string, userFlags: string[], channel: string | undefined): string[] {
  const flags = ["--unstable-net", "--preload", preload];
  // A scoped flag next to the user's scoped one adds to it; next to a bare one
  // (or -A) it would narrow it, or be refused, so it is left out there.
  if (!grants(userFlags, "--allow-env", "-E")) {
    const names = [...WORKER_ENV_NAMES, ...(channel ? CHANNEL_ENV_NAMES : [])];
    flags.push(`--allow-env=${names.join(",")}`);
  }
  if (channel !== undefined) {
    // Connecting to a Unix socket takes read and write permission on its
    // path, and net permission on `unix:` and its path.
    if (!grants(userFlags, "--allow-read", "-R")) flags.push(`--allow-read=${channel}`);
    if (!grants(userFlags, "--allow-write", "-W")) flags.push(`--allow-write=${channel}`);
    if (!grants(userFlags, "--allow-net", "-N")) flags.push(`--allow-net=unix:${channel}`);
  }
  return flags;
}

function denoServeAddress(args: string[]): { args: string[]; address?: string } {
  let host: string | undefined;
  let port: string | undefined;
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const m = /^--(port|host)(?:=(.*))?$/.exec(a);
    if (!m) {
      out.push(a);
      continue;
    }
    const value = m[2] ?? args[++i];
    if (m[1] === "port") port = value;
    else host = value;
  }
  const address = host || port ? `tcp:${host ?? "0.0.0.0"}:${port ?? "8000"}` : undefined;
  return { args: out, address };
}

/** Commands that download or find a package and run it as their own child. */
const LAUNCHERS = new Set(["npx", "bunx", "pnpx", "pnpm", "yarn", "npm"]);

/**
 * The real `deno` binary behind npm's `deno` package, whose `bin` is a Node
 * script that starts it as a child: run as is, the worker would be a
 * grandchild of the master, and its reporter would not speak to it.
 */
function npmShimTarget(path: string): string | undefined {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return undefined;
  }
  if (basename(real) !== "bin.cjs" || basename(dirname(real)) !== "deno") return undefined;
  const pkg = dirname(real);
  for (const scope of [`${pkg}/node_modules/@deno`, `${dirname(pkg)}/@deno`]) {
    let entries: string[];
    try {
      entries = readdirSync(scope);
    } catch {
      continue;
    }
    for (const entry of entries) {
      const candidate = `${scope}/${entry}/deno`;
      if (existsSync(candidate)) return candidate;
    }
  }
  return undefined;
}

/** `deno serve` flags whose value is the next argument. */
const SERVE_VALUE_FLAGS = new Set([
  "--port",
  "--host",
  "-c",
  "--config",
  "--import-map",
  "--cert",
  "--location",
  "--seed",
  "--ext",
  "--conditions",
  "--preload",
  "--require",
]);

/** Splits `deno serve` arguments into its flags, the file it serves, and the program's own. */
function splitServeArgs(args: string[]): { flags: string[]; file?: string; rest: string[] } {
  const flags: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") return { flags, file: args[i + 1], rest: args.slice(i + 2) };
    if (!a.startsWith("-") || a === "-") return { flags, file: a, rest: args.slice(i + 1) };
    flags.push(a);
    if (SERVE_VALUE_FLAGS.has(a) && i + 1 < args.length) flags.push(args[++i]);
  }
  return { flags, rest: [] };
}

/**
 * `deno serve --parallel FILE`: Deno's own isolates, each of which must load
 * the reporter, and `deno serve` does not load `--preload` modules. The file
 * served becomes a module of two lines, as a `data:` URL: import the
 * reporter, then re-export the app's default export. Each isolate reports on
 * its own connection to the master, all with the worker's token.
 */
function planParallelServe(argv: string[], options: PlanOptions): LaunchPlan {
  const { flags, file, rest } = splitServeArgs(argv.slice(2));
  if (file === undefined) {
    throw new ConfigError("deno serve --parallel needs the FILE to serve, after its flags");
  }
  const app = /^[a-z][a-z0-9+.-]*:/i.test(file) && !/^[a-z]:[\\/]/i.test(file)
    ? file
    : pathToFileURL(resolve(options.cwd, file)).href;
  const preload = pathToFileURL(options.preload).href;
  const entry = `import ${JSON.stringify(preload)};\nexport { default } from ${
    JSON.stringify(app)
  };\n`;
  const jobs = Number(options.env.DENO_JOBS);
  const isolates = Number.isSafeInteger(jobs) && jobs > 0 ? jobs : availableParallelism();
  const ours = denoFlags(options.preload, flags, options.channel);
  // The reporter comes in through the entry module: `deno serve` would not load it as --preload.
  ours.splice(ours.indexOf("--preload"), 2);
  const env = ours.findIndex((f) => f.startsWith("--allow-env="));
  if (env >= 0) ours[env] += `,${ISOLATES_ENV}`;
  return {
    argv: [
      argv[0],
      "serve",
      ...ours,
      ...flags,
      `data:application/javascript,${encodeURIComponent(entry)}`,
      ...rest,
    ],
    env: { DENO_JOBS: String(isolates), [ISOLATES_ENV]: String(isolates) },
    injected: true,
    runtime: "deno",
    isolates,
    ...(options.channel ? { channel: options.channel } : {}),
  };
}

function stripJsonComments(text: string): string {
  return text.replace(/("(?:\\.|[^"\\])*")|\/\/[^\n]*|\/\*[\s\S]*?\*\//g, (_m, str) => str ?? "");
}

/** Reads a task's command from deno.json / deno.jsonc in `cwd`. */
function denoTask(cwd: string, name: string): string | undefined {
  for (const file of ["deno.json", "deno.jsonc"]) {
    let text: string;
    try {
      text = readFileSync(`${cwd}/${file}`, "utf8");
    } catch {
      continue;
    }
    try {
      const tasks = JSON.parse(stripJsonComments(text)).tasks ?? {};
      const task = tasks[name];
      return typeof task === "string" ? task : task?.command;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function planDenoTask(argv: string[], options: PlanOptions): LaunchPlan {
  const name = argv[2];
  const command = name === undefined ? undefined : denoTask(options.cwd, name);
  const simple = command !== undefined && !/[|&;<>$`'"\\(){}*?]/.test(command);
  const words = simple ? command!.trim().split(/\s+/) : [];
  if (simple && words[0] === "deno" && (words[1] === "run" || words[1] === "serve")) {
    // The task's own command, run directly, so the worker stays forklift's child.
    return planLaunch([argv[0], ...words.slice(1), ...argv.slice(3)], options);
  }
  const what = name === undefined ? "deno task" : `deno task ${name}`;
  throw new ConfigError(
    `Cannot preload the reporter through "${what}": a task runs its command in a shell, so ` +
      `the server would not be forklift's child; run the command itself (forklift run -- deno run -A main.ts) or add --no-inject`,
  );
}

/**
 * Plans the argv and environment of a worker.
 *
 * @example Preload the reporter into a Deno program
 * ```ts
 * import { planLaunch } from "./inject.ts";
 * const plan = planLaunch(["deno", "run", "-A", "server.ts"], {
 *   inject: true, preload: "/opt/forklift/preload.js", env: {}, cwd: ".",
 * });
 * console.log(plan.argv.join(" "));
 * // deno run --unstable-net --preload /opt/forklift/preload.js -A server.ts
 * ```
 */
export function planLaunch(argv: string[], options: PlanOptions): LaunchPlan {
  return plan(argv, options, 0);
}

/** How many scripts deep `npm start` may lead (a script that runs `npm run` another). */
const MAX_SCRIPT_DEPTH = 8;

function plan(argv: string[], options: PlanOptions, depth: number): LaunchPlan {
  // deno.json's task wins over package.json's script of the same name, as in `deno task`.
  const denoTaskOwn = /^deno(\.exe)?$/.test(basename(argv[0] ?? "")) && argv[1] === "task" &&
    argv[2] !== undefined && denoTask(options.cwd, argv[2]) !== undefined;
  const script = options.inject && !denoTaskOwn ? packageScript(argv, options) : undefined;
  if (script !== undefined) {
    if (depth >= MAX_SCRIPT_DEPTH) {
      throw new ConfigError(
        `Cannot resolve "${basename(argv[0])} ${argv.slice(1).join(" ")}": package.json scripts ` +
          `call each other more than ${MAX_SCRIPT_DEPTH} deep; give the server's own command instead`,
      );
    }
    // The script's command is the worker, planned as if given on the command line.
    const env = { ...options.env, ...script.env };
    const inner = plan(script.argv, { ...options, env }, depth + 1);
    return { ...inner, env: { ...script.env, ...inner.env } };
  }
  if (options.inject && LAUNCHERS.has(basename(argv[0] ?? ""))) {
    const runtime = argv.slice(1).find((a) => /^(deno|bun)(@[^\s/]+)?$/.test(a));
    if (runtime !== undefined) {
      const name = runtime.replace(/@.*/, "");
      const launcher = basename(argv[0]);
      throw new ConfigError(
        `Cannot preload the reporter through ${launcher}: it starts ${name} as its own child, ` +
          `out of forklift's reach. Give ${name}'s own path instead (after ` +
          `\`npm install -g ${runtime}\`, \`command -v ${name}\` prints it), or add --no-inject`,
      );
    }
  }
  argv = [npmShimTarget(argv[0] ?? "") ?? argv[0], ...argv.slice(1)];
  const exe = basename(argv[0] ?? "");
  const isDeno = exe === "deno" || exe === "deno.exe";
  const isBun = exe === "bun" || exe === "bun.exe";
  if (!options.inject || (!isDeno && !isBun)) {
    return {
      argv: [...argv],
      env: {},
      injected: false,
      runtime: isDeno ? "deno" : isBun ? "bun" : "other",
    };
  }
  if (isDeno) {
    const sub = argv[1];
    if (sub === "task") return planDenoTask(argv, options);
    // `deno serve FILE` runs as `deno run` with the file's default export served.
    const injected = (args: string[], env: Record<string, string>): LaunchPlan => ({
      argv: [argv[0], "run", ...denoFlags(options.preload, args, options.channel), ...args],
      env,
      injected: true,
      runtime: "deno",
      ...(options.channel ? { channel: options.channel } : {}),
    });
    if (sub === "run") return injected(argv.slice(2), {});
    if (sub === "serve" && argv.includes("--parallel")) return planParallelServe(argv, options);
    if (sub === "serve") {
      const { args, address } = denoServeAddress(argv.slice(2));
      return injected(args, {
        DENO_AUTO_SERVE: "1",
        ...(address ? { DENO_SERVE_ADDRESS: address } : {}),
      });
    }
    throw new ConfigError(
      `Cannot preload the reporter into "deno ${sub ?? ""}": forklift injects into deno run, ` +
        `deno serve and simple deno tasks; add --no-inject to supervise it without metrics`,
    );
  }
  // `--preload PATH` with a space makes `bun run` print its usage; the `=` form works everywhere.
  const preload = `--preload=${options.bunPreload ?? options.preload}`;
  const channel = options.channel ? { channel: options.channel } : {};
  if (/\s/.test(preload)) {
    // BUN_OPTIONS is split at whitespace, quotes or not: a path with a space goes in argv.
    return {
      argv: [argv[0], preload, ...argv.slice(1)],
      env: {},
      injected: true,
      runtime: "bun",
      ...channel,
    };
  }
  const existing = options.env.BUN_OPTIONS?.trim();
  return {
    argv: [...argv],
    env: { BUN_OPTIONS: existing ? `${existing} ${preload}` : preload },
    injected: true,
    runtime: "bun",
    ...channel,
  };
}

/**
 * Quotes an argv for a POSIX shell, for `--dry-run` output.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shellQuote } from "./inject.ts";
 * assert.ok(shellQuote(["echo", "a b"]) === "echo 'a b'");
 * ```
 */
export function shellQuote(argv: string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`))
    .join(" ");
}
