/**
 * Resolves the effective settings from five layers, lowest to highest:
 * built-in default < INI `[forklift]` < INI `[forklift:ENV]` < environment
 * variables < command-line flags. Each value remembers where it came from.
 *
 * @module
 */
import { ALL_WORKER_ENV_NAMES } from "../protocol/env.ts";
import { redactUrl } from "../protocol/otlp.ts";
import { ConfigError, hint, suggest } from "./errors.ts";
import { applyNewRelicPreset } from "./new_relic.ts";
import type { FlagValue } from "./argv.ts";
import { type IniFile, readIniFile } from "./ini_file.ts";
import {
  CONFIG_FILE_ENV,
  ENVIRONMENT_ENV,
  envName,
  refusal,
  type Setting,
  SETTINGS,
  SETTINGS_BY_NAME,
  type SettingValue,
} from "./settings.ts";
import { type Config, typedConfig } from "./config.ts";

/** Inputs of {@linkcode loadSettings}. */
export interface LoadOptions {
  /** Raw flag values by setting name (from `parseCommandLine`). */
  flags?: Map<string, FlagValue>;
  /** `-c/--config`, wins over `FORKLIFT_CONFIG_FILE`. */
  config?: string;
  /** `-e/--environment`, wins over `FORKLIFT_ENVIRONMENT`. */
  environment?: string;
  /** The environment variables. */
  env?: Record<string, string | undefined>;
  /** Base for a relative config path. */
  cwd?: string;
  /** Logical CPUs, for `workers = auto`. */
  cpuCount?: number;
}

/** The effective settings and where each came from. */
export interface ResolvedSettings {
  /** Values by setting name, as `forklift config` prints them. */
  values: Record<string, SettingValue>;
  /** The same values, typed, durations in ms: what the code reads. */
  config: Config;
  /**
   * Origins by setting name: `default`, `file:PATH:LINE`,
   * `file:[forklift:ENV]`, `env:NAME` or `flag:--name`.
   */
  origins: Record<string, string>;
  /** The INI file read, if any. */
  file?: string;
  /** The `[forklift:ENV]` section used, if any. */
  environment?: string;
}

function parseValue(setting: Setting, raw: string, where: string, cpuCount: number): SettingValue {
  try {
    return setting.parse(raw, { cpuCount });
  } catch (e) {
    const shown = setting.secret
      ? "****"
      : JSON.stringify(setting.type === "url" ? redactUrl(raw) : raw);
    throw new ConfigError(
      `Cannot read "${setting.name}" ${where}: expected ${setting.expected}, got ${shown}${
        refusal(e)
      }`,
      { cause: e },
    );
  }
}

/**
 * A section meant for forklift but misspelled (`[forklfit]`, `[Forklift:prod]`,
 * `[forklift.prod]`) is refused as an unknown key is; a section with a name far
 * from forklift's (`[app]`) belongs to someone else and is left alone.
 */
function checkSection(file: IniFile, section: string): void {
  if (section === "forklift" || section.startsWith("forklift:")) return;
  const m = /^([^:._/\s-]*)\s*(?:[:._/\s-]\s*(.*))?$/.exec(section);
  const head = m?.[1] ?? section;
  if (suggest(head, ["forklift"]) === undefined) return;
  const env = m?.[2]?.trim();
  throw new ConfigError(
    `Unknown section [${section}] in ${file.path} line ${file.sectionLines.get(section)} ` +
      `(did you mean [forklift${env ? `:${env}` : ""}]?)`,
  );
}

function checkKeys(file: IniFile): void {
  for (const [section, entries] of file.sections) {
    checkSection(file, section);
    if (section !== "forklift" && !section.startsWith("forklift:")) continue;
    for (const e of entries) {
      if (SETTINGS_BY_NAME.has(e.key)) continue;
      throw new ConfigError(
        `Unknown setting "${e.key}" in ${file.path} line ${e.line}${
          hint(e.key, SETTINGS_BY_NAME.keys(), (s) => `"${s}"`)
        }`,
      );
    }
  }
}

function checkEnv(env: Record<string, string | undefined>): void {
  const settable = [CONFIG_FILE_ENV, ENVIRONMENT_ENV, ...SETTINGS.map(envName)];
  const known = new Set([...settable, ...ALL_WORKER_ENV_NAMES]);
  for (const name of Object.keys(env)) {
    if (!name.startsWith("FORKLIFT_") || known.has(name)) continue;
    throw new ConfigError(
      `Unknown environment variable ${name}${hint(name, settable)}`,
    );
  }
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === "" ? undefined : v;
}

/**
 * Resolves every setting from defaults, the INI file, the environment and the
 * flags. Throws a {@linkcode ConfigError} naming the source for any bad input.
 *
 * @example Flags win over the environment
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadSettings } from "./load.ts";
 * const r = loadSettings({
 *   env: { FORKLIFT_WORKERS: "2" },
 *   flags: new Map([["workers", { raw: "4", flag: "--workers" }]]),
 * });
 * assert.ok(r.values.workers === 4 && r.origins.workers === "flag:--workers");
 * ```
 */
export function loadSettings(options: LoadOptions = {}): ResolvedSettings {
  const env = options.env ?? {};
  const cwd = options.cwd ?? ".";
  const cpuCount = options.cpuCount ?? 1;
  checkEnv(env);

  const values: Record<string, SettingValue> = {};
  const origins: Record<string, string> = {};
  for (const s of SETTINGS) {
    values[s.name] = s.default;
    origins[s.name] = "default";
  }

  const fromFlag = options.config !== undefined;
  const path = fromFlag ? options.config : nonEmpty(env[CONFIG_FILE_ENV]);
  const environment = options.environment ?? nonEmpty(env[ENVIRONMENT_ENV]);
  let file: IniFile | undefined;
  if (path === undefined && environment !== undefined) {
    const from = options.environment !== undefined ? "-e/--environment" : `env:${ENVIRONMENT_ENV}`;
    throw new ConfigError(
      `Environment "${environment}" (from ${from}) names a [forklift:${environment}] section, but no config file is given (-c/--config or ${CONFIG_FILE_ENV})`,
    );
  }
  if (path !== undefined) {
    if (path.trim() === "") {
      throw new ConfigError("Config file path given with -c/--config is empty");
    }
    file = readIniFile(path, cwd, fromFlag ? "-c/--config" : `env:${CONFIG_FILE_ENV}`);
    checkKeys(file);
    for (const e of file.sections.get("forklift") ?? []) {
      const s = SETTINGS_BY_NAME.get(e.key)!;
      values[s.name] = parseValue(s, e.value, `in ${file.path} line ${e.line}`, cpuCount);
      origins[s.name] = `file:${file.path}:${e.line}`;
    }
    if (environment !== undefined) {
      const section = file.sections.get(`forklift:${environment}`);
      if (section === undefined) {
        const envs = [...file.sections.keys()].filter((k) => k.startsWith("forklift:"));
        const have = envs.length ? `; it has ${envs.map((k) => `[${k}]`).join(", ")}` : "";
        throw new ConfigError(
          `No [forklift:${environment}] section in ${file.path} for environment "${environment}"${have}`,
        );
      }
      for (const e of section) {
        const s = SETTINGS_BY_NAME.get(e.key)!;
        values[s.name] = parseValue(
          s,
          e.value,
          `in ${file.path} line ${e.line} [forklift:${environment}]`,
          cpuCount,
        );
        origins[s.name] = `file:[forklift:${environment}]`;
      }
    }
  }

  for (const s of SETTINGS) {
    const candidates = [
      ...(s.altEnv ?? []).map((a) => [a.name, a.convert] as const),
      [
        envName(s),
        undefined,
      ] as const,
    ];
    for (const [name, convert] of candidates) {
      const raw = nonEmpty(env[name]);
      if (raw === undefined) continue;
      values[s.name] = parseValue(s, convert ? convert(raw) : raw, `from env ${name}`, cpuCount);
      origins[s.name] = `env:${name}`;
    }
  }

  for (const [name, f] of options.flags ?? []) {
    const s = SETTINGS_BY_NAME.get(name)!;
    values[name] = parseValue(s, f.raw, `from flag ${f.flag}`, cpuCount);
    origins[name] = `flag:${f.flag.startsWith("--") ? f.flag : s.flag}`;
  }

  applyNewRelicPreset(values, origins, env);
  return {
    values,
    config: typedConfig(values),
    origins,
    file: file?.path,
    environment: file ? environment : undefined,
  };
}

/**
 * What a reload may apply: `next`, except that each setting `HUP` cannot
 * apply (`reload: false`) keeps its running value and origin; `restart` names
 * those whose value changed, for the one log line that says so.
 *
 * @example A changed once waits for a restart
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadSettings, reloadable } from "./load.ts";
 * const running = loadSettings({ env: { FORKLIFT_WORKERS: "2" } });
 * const next = loadSettings({ env: { FORKLIFT_WORKERS: "4", FORKLIFT_ONCE: "true" } });
 * const { settings, restart } = reloadable(running, next);
 * assert.deepEqual(restart, ["once"]);
 * assert.equal(settings.config.workers, 4);
 * assert.equal(settings.config.once, false);
 * ```
 */
export function reloadable(
  running: ResolvedSettings,
  next: ResolvedSettings,
): { settings: ResolvedSettings; restart: string[] } {
  const values = { ...next.values };
  const origins = { ...next.origins };
  const restart: string[] = [];
  for (const s of SETTINGS) {
    if (s.reload) continue;
    if (JSON.stringify(running.values[s.name]) !== JSON.stringify(values[s.name])) {
      restart.push(s.name);
    }
    values[s.name] = running.values[s.name];
    origins[s.name] = running.origins[s.name];
  }
  return { settings: { ...next, values, origins, config: typedConfig(values) }, restart };
}
