/**
 * `forklift config`: the effective settings, with `--origin` where each came
 * from and `--json` as one object. Secrets print as `****`.
 *
 * @module
 */
import type { ResolvedSettings } from "../config/load.ts";
import { displayValue, jsonValue, SETTINGS } from "../config/settings.ts";
import type { CommandContext } from "./context.ts";

/**
 * Renders resolved settings as `forklift config` prints them.
 *
 * @example Text with origins
 * ```ts
 * import { renderConfig } from "./config.ts";
 * import { loadSettings } from "../config/load.ts";
 * console.log(renderConfig(loadSettings(), { origin: true, json: false }));
 * ```
 */
export function renderConfig(
  settings: ResolvedSettings,
  options: { origin: boolean; json: boolean },
): string {
  if (options.json) {
    const out: Record<string, { value: unknown; origin: string }> = {};
    for (const s of SETTINGS) {
      out[s.name] = {
        value: jsonValue(s, settings.values[s.name]),
        origin: settings.origins[s.name],
      };
    }
    return JSON.stringify(out, null, 2) + "\n";
  }
  const head: string[] = [];
  if (settings.file) head.push(`# file: ${settings.file}`);
  if (settings.environment) head.push(`# environment: [forklift:${settings.environment}]`);
  const rows = SETTINGS.map((s) => [s.name, displayValue(s, settings.values[s.name])]);
  const width = Math.max(...rows.map(([n]) => n.length));
  const valueWidth = Math.max(...rows.map(([, v]) => v.length));
  const lines = rows.map(([name, value]) => {
    const base = `${name.padEnd(width)} = ${value}`;
    return options.origin
      ? `${name.padEnd(width)} = ${value.padEnd(valueWidth)}  ${settings.origins[name]}`
      : base;
  });
  return [...head, ...lines].join("\n") + "\n";
}

/**
 * Runs `forklift config`.
 *
 * @example
 * ```ts ignore
 * import { configCommand } from "./config.ts";
 * await configCommand(ctx);
 * ```
 */
export function configCommand(ctx: CommandContext): Promise<number> {
  const sw = ctx.commandLine.switches;
  ctx.print(renderConfig(ctx.settings, { origin: sw.has("origin"), json: sw.has("json") }));
  return Promise.resolve(0);
}
