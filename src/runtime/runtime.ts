/**
 * The runtime adapter: the one place the master's code learns which runtime it
 * runs on and reaches what differs between Deno and Bun. Everything else
 * receives a {@linkcode Runtime} and stays runtime-neutral.
 *
 * @module
 */
import process from "node:process";
import { availableParallelism } from "node:os";
import { runtimeId } from "./detect.ts";
import { releaseStartupMemory } from "./memory.ts";

/** The runtimes forklift knows. */
export type RuntimeName = "deno" | "bun" | "node";

/** Signals the master listens for. */
export type SignalName =
  | "SIGTERM"
  | "SIGINT"
  | "SIGQUIT"
  | "SIGHUP"
  | "SIGTTIN"
  | "SIGTTOU"
  | "SIGUSR1"
  | "SIGCHLD";

/** What the master needs from the runtime it runs on. */
export interface Runtime {
  /** `deno`, `bun` or `node`. */
  readonly name: RuntimeName;
  /** The runtime's version, e.g. `2.9.6`. */
  readonly version: string;
  /** Path of the executable running this process. */
  readonly execPath: string;
  /** True inside a single-file binary (`bun build --compile` or `deno compile`). */
  readonly compiled: boolean;
  /** Command-line arguments after the program (and script) name. */
  args(): string[];
  /** A snapshot of the environment; empty when the runtime forbids reading it. */
  env(): Record<string, string>;
  /** The current working directory. */
  cwd(): string;
  /** Logical CPUs available to this process. */
  cpuCount(): number;
  /** Listens for a signal; returns a function that removes the listener. */
  onSignal(signal: SignalName, listener: () => void): () => void;
  /** Ends the process with `code` once pending output is written. */
  exit(code: number): never;
  /** Frees what only start-up needed; call once the master idles. Best effort. */
  releaseStartupMemory(): Promise<void>;
}

interface DenoLike {
  version: { deno: string };
  execPath(): string;
  args: string[];
  mainModule?: string;
}

interface BunLike {
  version: string;
  argv: string[];
  main?: string;
}

/**
 * Names the runtime this code runs on.
 *
 * @example Detect the runtime
 * ```ts
 * import { detectRuntimeName } from "./runtime.ts";
 * console.log(detectRuntimeName()); // "deno" or "bun"
 * ```
 */
export function detectRuntimeName(): RuntimeName {
  return runtimeId().split("/")[0] as RuntimeName;
}

function isCompiled(name: RuntimeName): boolean {
  const g = globalThis as Record<string, unknown>;
  if (name === "bun") {
    const main = (g.Bun as BunLike).main ?? "";
    return main.startsWith("/$bunfs/") || /^[A-Z]:\\~BUN\\/.test(main);
  }
  if (name === "deno") {
    const main = (g.Deno as DenoLike).mainModule ?? "";
    return main.includes("/deno-compile-");
  }
  return false;
}

let cached: Runtime | undefined;

/**
 * Returns the adapter for the runtime this process runs on (built once).
 *
 * @example Read the arguments and the CPU count
 * ```ts
 * import { currentRuntime } from "./runtime.ts";
 * const rt = currentRuntime();
 * console.log(rt.name, rt.version, rt.args(), rt.cpuCount());
 * ```
 */
export function currentRuntime(): Runtime {
  if (cached) return cached;
  const name = detectRuntimeName();
  const g = globalThis as Record<string, unknown>;
  const execPath = name === "deno" ? (g.Deno as DenoLike).execPath() : process.execPath;
  const compiled = isCompiled(name);
  cached = {
    name,
    version: runtimeId().split("/")[1],
    execPath,
    compiled,
    args: () =>
      name === "deno"
        ? [...(g.Deno as DenoLike).args]
        : name === "bun"
        ? (g.Bun as BunLike).argv.slice(2)
        : process.argv.slice(2),
    env: () => {
      try {
        return { ...process.env } as Record<string, string>;
      } catch {
        return {};
      }
    },
    cwd: () => process.cwd(),
    cpuCount: () => {
      try {
        return Math.max(1, availableParallelism());
      } catch {
        return Math.max(1, navigator.hardwareConcurrency ?? 1);
      }
    },
    onSignal: (signal, listener) => {
      process.on(signal, listener);
      return () => void process.off(signal, listener);
    },
    exit: (code) => {
      process.exitCode = code;
      // Let buffered stderr/stdout drain first; both runtimes honour exitCode.
      process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
      setTimeout(() => process.exit(code), 200);
      return undefined as never;
    },
    releaseStartupMemory: () => compiled ? releaseStartupMemory(execPath) : Promise.resolve(),
  };
  return cached;
}
