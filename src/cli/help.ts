/**
 * Help text, derived from the settings registry so it never drifts from it.
 *
 * @module
 */
import { type CommandName, COMMANDS } from "../config/argv.ts";
import { ConfigError, hint } from "../config/errors.ts";
import { envName, SETTINGS } from "../config/settings.ts";

/** One-line summaries and usage lines of the commands. */
export const COMMAND_HELP: Record<
  CommandName,
  { usage: string; summary: string; switches: string[] }
> = {
  run: {
    usage: "forklift run [OPTIONS] [--] COMMAND [ARGS...]   (alias: run-program)",
    summary: "Run COMMAND as supervised workers on one port and serve their metrics",
    switches: ["--dry-run          print the argv and env each worker would get, then exit"],
  },
  config: {
    usage: "forklift config [OPTIONS] [--origin] [--json]",
    summary: "Print the effective settings (secrets as ****)",
    switches: [
      "--origin           show where each value came from",
      "--json             one JSON object: {name: {value, origin}}",
    ],
  },
  check: {
    usage: "forklift check [OPTIONS] [--connect] [[--] COMMAND [ARGS...]]",
    summary: "Validate the configuration; --connect also tries one OTLP export",
    switches: [
      "--connect          send one export to otlp_endpoint, as run would; its",
      "                   service.name falls back to COMMAND's name, or to",
      "                   forklift when no COMMAND is given",
    ],
  },
  status: {
    usage: "forklift status [--metrics-bind ADDR] [--json]",
    summary: "Ask a running master for its workers (its HTTP /status); exit 1 when not ready",
    switches: ["--json             print the raw /status document"],
  },
  top: {
    usage: "forklift top [--metrics-bind ADDR] [--once]",
    summary: "Watch a running master's workers live: CPU, memory, heap, loop delay, requests",
    switches: [
      "--once             print one view as plain text and exit (also when not a terminal)",
      "keys: r reload (HUP), + add a worker (TTIN), - remove one (TTOU), q quit",
    ],
  },
  version: { usage: "forklift version | --version", summary: "Print the version", switches: [] },
  help: { usage: "forklift help [COMMAND] | --help", summary: "Show help", switches: [] },
};

function settingLines(): string[] {
  const lines: string[] = [];
  let section = "";
  // Each section once, in the order sections first appear, whatever the registry's order.
  const order = [...new Set(SETTINGS.map((s) => s.section))];
  const sorted = [...SETTINGS].sort((a, b) => order.indexOf(a.section) - order.indexOf(b.section));
  for (const s of sorted) {
    if (s.section !== section) {
      section = s.section;
      lines.push("", `${section}:`);
    }
    const short = s.short ? `-${s.short}, ` : "    ";
    const flag = s.type === "boolean"
      ? `${s.flag} / --no-${s.flag.slice(2)}`
      : `${s.flag} ${s.meta ?? "VALUE"}`;
    lines.push(`  ${short}${flag.padEnd(32)} ${s.doc}`);
    const env = [envName(s), ...(s.altEnv ?? []).map((a) => a.name)].join(", ");
    lines.push(`${" ".repeat(39)}[env ${env}]`);
  }
  return lines;
}

/**
 * Help for forklift or one of its commands.
 *
 * @example Help for run
 * ```ts
 * import { helpText } from "./help.ts";
 * console.log(helpText("run"));
 * ```
 */
export function helpText(topic?: string): string {
  if (topic === undefined) {
    return [
      "forklift: run a Deno or Bun server as supervised workers, with metrics from all of them",
      "",
      "Usage: forklift COMMAND [OPTIONS]",
      "",
      "Commands:",
      ...Object.entries(COMMAND_HELP).map(([n, h]) => `  ${n.padEnd(9)} ${h.summary}`),
      "",
      "Every command takes -c/--config FILE (or FORKLIFT_CONFIG_FILE), -e/--environment ENV",
      "(or FORKLIFT_ENVIRONMENT) and every setting's flag. Precedence, lowest first: default,",
      "INI [forklift], INI [forklift:ENV], environment, flags.",
      ...settingLines(),
      "",
      "Example: forklift run -w 4 -- deno run -A server.ts",
      "",
    ].join("\n");
  }
  const name = topic === "run-program" ? "run" : topic;
  if (!Object.hasOwn(COMMANDS, name)) {
    throw new ConfigError(
      `No help for "${topic}"${hint(topic, Object.keys(COMMANDS), (s) => `"${s}"`)}`,
    );
  }
  const h = COMMAND_HELP[name as CommandName];
  return [
    `Usage: ${h.usage}`,
    "",
    h.summary,
    ...(h.switches.length ? ["", "Switches:", ...h.switches.map((s) => `  ${s}`)] : []),
    "",
    "Settings (also -c/--config FILE, -e/--environment ENV):",
    ...settingLines().slice(1),
    "",
  ].join("\n");
}
