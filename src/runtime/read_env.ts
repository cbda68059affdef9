/**
 * Environment variables read and forgotten without ever prompting or
 * throwing: a worker's reporter must not stop a Deno program that was not
 * granted `--allow-env` to ask for it.
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

function g(): any {
  return globalThis as any;
}

let promptable: boolean | undefined;

function mayPrompt(deno: any): boolean {
  if (promptable === undefined) {
    try {
      promptable = deno.stdin?.isTerminal?.() !== false && deno.stderr?.isTerminal?.() !== false;
    } catch {
      promptable = true;
    }
  }
  return promptable;
}

/**
 * Reads an environment variable without ever prompting or throwing: in Deno
 * it is read only when the permission is already granted.
 *
 * @example Read the master's pid
 * ```ts
 * import { readEnv } from "./read_env.ts";
 * const pid = readEnv("FORKLIFT_MASTER_PID"); // undefined when unset or not permitted
 * ```
 */
export function readEnv(name: string): string | undefined {
  try {
    const deno = g().Deno;
    if (deno !== undefined) {
      // Deno prompts only when stdin and stderr are terminals. A worker's stdin
      // never is, and there a denied read just throws (caught below), at a
      // fraction of the cost of asking for the permission's state first.
      if (!mayPrompt(deno)) return deno.env.get(name);
      const state = deno.permissions?.querySync?.({ name: "env", variable: name })?.state;
      if (state !== "granted") return undefined;
      return deno.env.get(name);
    }
    return g().process?.env?.[name];
  } catch {
    return undefined;
  }
}

/**
 * Removes a variable from this process's environment, so that processes it
 * starts from now on do not inherit it. Best effort: never throws, never
 * prompts.
 *
 * @example Forget a one-time token once read
 * ```ts ignore
 * import { forgetEnv, readEnv } from "./read_env.ts";
 * const token = readEnv("FORKLIFT_CHANNEL_TOKEN");
 * forgetEnv("FORKLIFT_CHANNEL_TOKEN");
 * ```
 */
export function forgetEnv(name: string): void {
  try {
    const deno = g().Deno;
    if (deno !== undefined) {
      if (!mayPrompt(deno)) deno.env.delete(name);
      return;
    }
    delete g().process?.env?.[name];
  } catch {
    // Not permitted: the variable stays, and the token still works only once.
  }
}
