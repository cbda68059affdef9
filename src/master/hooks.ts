/**
 * The user's hooks module (`--hooks FILE`): optional exports the master
 * awaits at fixed points of its life, as gunicorn's server hooks.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import type { Logger } from "@logtape/logtape";
import { ConfigError, firstLine } from "../config/errors.ts";
import { freshSpecifier } from "../runtime/fresh_import.ts";

/** The worker a hook is about. */
export interface WorkerDescriptor {
  slot: number;
  generation: number;
  pid: number | null;
  /** Exit code, for `childExit`. */
  exitCode?: number | null;
  /** Terminating signal, for `childExit`. */
  signal?: string | null;
  /** Why the worker stopped or was replaced (`crash`, `reload`, …). */
  reason?: string;
}

/** The master a hook is about. */
export interface MasterDescriptor {
  pid: number;
  workers: number;
  command: string[];
}

/** The hooks a module may export; every one is optional and may be async. */
export interface Hooks {
  onStarting?(master: MasterDescriptor): unknown;
  whenReady?(master: MasterDescriptor): unknown;
  preFork?(worker: WorkerDescriptor): unknown;
  postFork?(worker: WorkerDescriptor): unknown;
  childExit?(worker: WorkerDescriptor): unknown;
  onReload?(master: MasterDescriptor): unknown;
  onExit?(master: MasterDescriptor): unknown;
}

/** The names of the hooks, in the order of a master's life. */
export const HOOK_NAMES = [
  "onStarting",
  "whenReady",
  "preFork",
  "postFork",
  "childExit",
  "onReload",
  "onExit",
] as const;

/** Imports of each hooks module so far, successful or not: each gets a specifier of its own. */
const imports = new Map<string, number>();
/** Each hooks module last loaded: from which text, to what. */
const loaded = new Map<string, { text?: string; mod: Record<string, unknown> }>();

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    // The import says what is wrong with the file.
    return undefined;
  }
}

/**
 * Imports a hooks module as the file is now: importing a path again (a
 * reload) evaluates the file again if it was edited since. A missing file or
 * a module that fails to load is a {@linkcode ConfigError}, and so is a hook
 * export that is not a function.
 *
 * @example
 * ```ts ignore
 * import { loadHooks } from "./hooks.ts";
 * const hooks = await loadHooks("hooks.ts", process.cwd());
 * ```
 */
export async function loadHooks(path: string, cwd: string): Promise<Hooks> {
  const abs = isAbsolute(path) ? path : resolve(cwd, path);
  const text = readText(abs);
  const last = loaded.get(abs);
  let mod: Record<string, unknown>;
  if (last !== undefined && text !== undefined && text === last.text) {
    mod = last.mod;
  } else {
    // A module is evaluated once per specifier, and each stays in memory:
    // an edited file gets one of its own (its own imports stay as first loaded).
    // Counted before the import: one that failed, or never finished, keeps
    // its specifier, and the next try must not wait on it.
    const n = (imports.get(abs) ?? 0) + 1;
    imports.set(abs, n);
    try {
      mod = await import(freshSpecifier(abs, n));
    } catch (e) {
      throw new ConfigError(`Cannot load hooks module ${path}: ${firstLine(e)}`, { cause: e });
    }
    loaded.set(abs, { text, mod });
  }
  const hooks: Hooks = {};
  for (const name of HOOK_NAMES) {
    const fn = mod[name];
    if (fn === undefined) continue;
    if (typeof fn !== "function") {
      throw new ConfigError(`Hook ${name} in ${path} is not a function`);
    }
    hooks[name] = fn as (arg: never) => unknown;
  }
  return hooks;
}

/**
 * Calls one hook, if the module has it, and waits for it. A hook that throws
 * is logged and changes nothing: only `onStarting` may stop the master, and
 * its caller decides that.
 *
 * @example
 * ```ts ignore
 * import { callHook } from "./hooks.ts";
 * await callHook(hooks, "whenReady", { pid: 1, workers: 2, command: ["app"] }, log);
 * ```
 */
export async function callHook<K extends keyof Hooks>(
  hooks: Hooks,
  name: K,
  arg: Parameters<NonNullable<Hooks[K]>>[0],
  log: Logger,
): Promise<void> {
  const fn = hooks[name] as ((a: typeof arg) => unknown) | undefined;
  if (!fn) return;
  try {
    await fn(arg);
  } catch (e) {
    log.error("Hook {hook} failed: {error}", { hook: name, error: firstLine(e) });
  }
}

/**
 * Makes `target` the hooks of `source`, in place: whoever holds `target`
 * (the arbiter) calls the new hooks from now on.
 *
 * @example Replace the hooks in place
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Hooks, replaceHooks } from "./hooks.ts";
 * const hooks: Hooks = { onExit: () => "old" };
 * replaceHooks(hooks, { onReload: () => "new" });
 * assert.equal(hooks.onExit, undefined);
 * assert.equal(hooks.onReload?.({ pid: 1, workers: 1, command: [] }), "new");
 * ```
 */
export function replaceHooks(target: Hooks, source: Hooks): void {
  for (const name of HOOK_NAMES) {
    if (source[name] === undefined) delete target[name];
    else target[name] = source[name] as (arg: never) => unknown;
  }
}
