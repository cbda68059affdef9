/**
 * The settings registry: every setting declared once. The argv parser, the
 * INI reader, the environment reader, `forklift config` and the generated
 * `docs/settings.md` all derive from {@linkcode SETTINGS}.
 *
 * @module
 */
import { redactUrl } from "../protocol/otlp.ts";
import { msToSeconds, parseSeconds } from "./durations.ts";
import {
  basicAuth,
  boolean,
  formatSize,
  integer,
  keyValuesOrNull,
  oneOf,
  parseBind,
  size,
  text,
  token,
  url,
} from "./readers.ts";

export { MAX_SECONDS } from "./durations.ts";
export { parseBind, parseHeaders, refusal } from "./readers.ts";

/** The value a setting may hold once parsed. */
export type SettingValue =
  | number
  | boolean
  | string
  | null
  | Record<string, string>;

/** How a raw text value is read into a setting's value. */
export interface ParseContext {
  /** Logical CPUs, for `workers = auto`. */
  cpuCount: number;
}

/** An extra environment variable read for a setting, below `FORKLIFT_*`. */
export interface AltEnv {
  name: string;
  /** Converts the variable's text into the setting's own text form. */
  convert?: (raw: string) => string;
}

/** One setting of the registry. */
export interface Setting {
  /** INI key and the base of the env var and flag names. */
  name: string;
  /** Group used by help and docs. */
  section: "Workers" | "Supervision" | "Metrics" | "Export" | "Program" | "Logging";
  /** Long flag, e.g. `--workers`. */
  flag: string;
  /** Short flag letter, e.g. `w`. */
  short?: string;
  /** Placeholder shown in help for the flag's value. */
  meta?: string;
  /** `boolean` settings take no value on the command line. */
  type:
    | "integer"
    | "seconds"
    | "size"
    | "boolean"
    | "string"
    | "enum"
    | "bind"
    | "url"
    | "headers"
    | "path";
  /** Lower-priority environment variables (the `FORKLIFT_*` one always wins). */
  altEnv?: readonly AltEnv[];
  /** The values an `enum` setting accepts. */
  choices?: readonly string[];
  /** Built-in default, in parsed form. */
  default: SettingValue;
  /** How the default reads in docs when it is computed elsewhere. */
  defaultDoc?: string;
  /** Hidden as `****` everywhere it is printed. */
  secret?: boolean;
  /** The flag may repeat; values accumulate. */
  repeatable?: boolean;
  /** One-line description for help and docs. */
  doc: string;
  /**
   * Whether `HUP` applies a change of this setting (`true`), or only a
   * restart does (`false`, named in the reload's log line).
   */
  reload: boolean;
  /** The expected form, quoted in error messages. */
  expected: string;
  /** Reads raw text; throws a `RangeError` or `TypeError` saying what is wrong. */
  parse(raw: string, ctx: ParseContext): SettingValue;
}

/** The environment variable that names the INI file. */
export const CONFIG_FILE_ENV = "FORKLIFT_CONFIG_FILE";
/** The environment variable that picks the `[forklift:ENV]` section. */
export const ENVIRONMENT_ENV = "FORKLIFT_ENVIRONMENT";

/** The registry with each entry's literal types, from which {@linkcode SettingEntry} is read. */
const REGISTRY = [
  {
    name: "workers",
    section: "Workers",
    flag: "--workers",
    short: "w",
    meta: "N",
    type: "integer",
    altEnv: [{ name: "WEB_CONCURRENCY" }],
    default: 1,
    doc: "Worker processes to run; `auto` means one per CPU",
    expected: 'a positive integer or "auto"',
    reload: true,
    parse: (raw, ctx) => (raw.trim().toLowerCase() === "auto" ? ctx.cpuCount : integer(1, raw)),
  },
  {
    name: "timeout",
    section: "Supervision",
    flag: "--timeout",
    short: "t",
    meta: "SECONDS",
    type: "seconds",
    default: 30,
    doc: "Kill and replace a worker silent for this long (0 turns the heartbeat check off)",
    expected: "a number of seconds (0 = off)",
    reload: true,
    parse: (raw) => parseSeconds(raw, true),
  },
  {
    name: "graceful_timeout",
    section: "Supervision",
    flag: "--graceful-timeout",
    meta: "SECONDS",
    type: "seconds",
    default: 30,
    doc: "Time a stopping worker has to finish in-flight requests before SIGKILL",
    expected: "a number of seconds",
    reload: true,
    parse: (raw) => parseSeconds(raw, true),
  },
  {
    name: "max_requests",
    section: "Supervision",
    flag: "--max-requests",
    meta: "N",
    type: "integer",
    default: 0,
    doc: "Recycle a worker gracefully after this many requests (0 = never)",
    expected: "a non-negative integer",
    reload: true,
    parse: (raw) => integer(0, raw),
  },
  {
    name: "max_requests_jitter",
    section: "Supervision",
    flag: "--max-requests-jitter",
    meta: "N",
    type: "integer",
    default: 0,
    doc: "Add a random 0..N to max_requests per worker, so workers do not recycle together",
    expected: "a non-negative integer",
    reload: true,
    parse: (raw) => integer(0, raw),
  },
  {
    name: "max_memory",
    section: "Supervision",
    flag: "--max-memory",
    meta: "SIZE",
    type: "size",
    default: 0,
    doc:
      "Roll a worker gracefully once its process group's resident memory stays above this (`512M`; K, M, G are binary; 0 = never)",
    expected: "a size in bytes with an optional K, M or G suffix, such as 512M (0 = off)",
    reload: true,
    parse: size,
  },
  {
    name: "harvest_interval",
    section: "Metrics",
    flag: "--harvest-interval",
    meta: "SECONDS",
    type: "seconds",
    default: 5,
    doc: "How often each worker hands its metric deltas to the master",
    expected: "a positive number of seconds",
    reload: true,
    parse: (raw) => parseSeconds(raw, false),
  },
  {
    name: "metrics_bind",
    section: "Metrics",
    flag: "--metrics-bind",
    meta: "HOST:PORT",
    type: "bind",
    default: "127.0.0.1:9464",
    doc:
      "Where the master serves /metrics, /status and the /ready and /live probes, from when every worker is first ready (250 ms after start at the latest); `off` disables",
    expected: 'HOST:PORT or "off"',
    reload: true,
    parse: parseBind,
  },
  {
    name: "metrics_memory_limit",
    section: "Metrics",
    flag: "--metrics-memory-limit",
    meta: "MIB",
    type: "integer",
    default: 16,
    doc:
      "Memory the master's metric state may take, estimated, with the exposition it renders to; points of new series beyond it are dropped and counted (reason memory_limit)",
    expected: "a positive integer (MiB)",
    reload: true,
    parse: (raw) => integer(1, raw),
  },
  {
    name: "otlp_endpoint",
    section: "Export",
    flag: "--otlp-endpoint",
    meta: "URL",
    type: "url",
    altEnv: [{ name: "OTEL_EXPORTER_OTLP_ENDPOINT" }],
    default: null,
    doc: "OTLP/HTTP collector base URL; metrics go to URL/v1/metrics (off when unset)",
    expected: "an http:// or https:// URL",
    reload: true,
    parse: url,
  },
  {
    name: "otlp_headers",
    section: "Export",
    flag: "--otlp-header",
    meta: "KEY=VALUE",
    type: "headers",
    altEnv: [{ name: "OTEL_EXPORTER_OTLP_HEADERS" }],
    default: null,
    secret: true,
    repeatable: true,
    doc: "Headers sent with every OTLP export, e.g. an API key (repeat the flag for several)",
    expected: "KEY=VALUE pairs separated by commas",
    reload: true,
    parse: keyValuesOrNull,
  },
  {
    name: "otlp_metrics_endpoint",
    section: "Export",
    flag: "--otlp-metrics-endpoint",
    meta: "URL",
    type: "url",
    altEnv: [{ name: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT" }],
    default: null,
    doc: "Full OTLP/HTTP metrics URL, used as given; wins over otlp_endpoint",
    expected: "an http:// or https:// URL",
    reload: true,
    parse: url,
  },
  {
    name: "otlp_protocol",
    section: "Export",
    flag: "--otlp-protocol",
    meta: "PROTOCOL",
    altEnv: [
      { name: "OTEL_EXPORTER_OTLP_PROTOCOL" },
      { name: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL" },
    ],
    default: "http/protobuf",
    doc: "Encoding of OTLP exports: http/protobuf or http/json",
    expected: "http/protobuf or http/json",
    reload: true,
    ...oneOf(["http/protobuf", "http/json"]),
  },
  {
    name: "otlp_compression",
    section: "Export",
    flag: "--otlp-compression",
    meta: "gzip|none",
    altEnv: [
      { name: "OTEL_EXPORTER_OTLP_COMPRESSION" },
      { name: "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION" },
    ],
    default: "none",
    doc: "Compress OTLP request bodies",
    expected: "gzip or none",
    reload: true,
    ...oneOf(["gzip", "none"]),
  },
  {
    name: "otlp_timeout",
    section: "Export",
    flag: "--otlp-timeout",
    meta: "SECONDS",
    type: "seconds",
    altEnv: [
      { name: "OTEL_EXPORTER_OTLP_TIMEOUT", convert: msToSeconds },
      { name: "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", convert: msToSeconds },
    ],
    default: 10,
    doc: "How long one OTLP request may take (the OTEL_* variables are in ms)",
    expected: "a positive number of seconds",
    reload: true,
    parse: (raw) => parseSeconds(raw, false),
  },
  {
    name: "otlp_temporality",
    section: "Export",
    flag: "--otlp-temporality",
    meta: "PREFERENCE",
    altEnv: [{ name: "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE" }],
    default: "cumulative",
    doc:
      "cumulative (series never reset, start at the master's start), delta or lowmemory (counters and histograms as deltas)",
    expected: "cumulative, delta or lowmemory",
    reload: true,
    ...oneOf(["cumulative", "delta", "lowmemory"]),
  },
  {
    name: "resource_attributes",
    section: "Export",
    flag: "--resource-attribute",
    meta: "KEY=VALUE",
    type: "headers",
    altEnv: [{ name: "OTEL_RESOURCE_ATTRIBUTES" }],
    default: null,
    repeatable: true,
    doc: "Extra resource attributes of every export (percent-decoded; service_name wins)",
    expected: "KEY=VALUE pairs separated by commas",
    reload: true,
    parse: keyValuesOrNull,
  },
  {
    name: "export_interval",
    section: "Export",
    flag: "--export-interval",
    meta: "SECONDS",
    type: "seconds",
    altEnv: [{
      name: "OTEL_METRIC_EXPORT_INTERVAL",
      convert: msToSeconds,
    }],
    default: 60,
    doc: "How often the master pushes to the OTLP endpoint (OTEL_METRIC_EXPORT_INTERVAL is in ms)",
    expected: "a positive number of seconds",
    reload: true,
    parse: (raw) => parseSeconds(raw, false),
  },
  {
    name: "service_name",
    section: "Export",
    flag: "--service-name",
    meta: "NAME",
    type: "string",
    altEnv: [{ name: "OTEL_SERVICE_NAME" }],
    default: null,
    defaultDoc: "program name",
    doc: "The service.name resource attribute of every metric",
    expected: "a non-empty name",
    reload: true,
    parse: text,
  },
  {
    name: "inject",
    section: "Program",
    flag: "--inject",
    type: "boolean",
    default: true,
    doc: "Preload the reporter into deno and bun workers (--no-inject to supervise only)",
    expected: "true or false",
    reload: true,
    parse: boolean,
  },
  {
    name: "hooks",
    section: "Program",
    flag: "--hooks",
    meta: "FILE",
    type: "path",
    default: null,
    doc: "Module whose exports (onStarting, preFork, postFork, …) the master calls",
    expected: "a file path",
    reload: true,
    parse: text,
  },
  {
    name: "once",
    section: "Program",
    flag: "--once",
    type: "boolean",
    default: false,
    doc: "Run one worker, never respawn, and exit with the program's own exit code",
    expected: "true or false",
    reload: false,
    parse: boolean,
  },
  {
    name: "log_level",
    section: "Logging",
    flag: "--log-level",
    meta: "LEVEL",
    default: "info",
    doc: "debug, info, warning or error",
    expected: "debug, info, warning or error",
    reload: true,
    ...oneOf(["debug", "info", "warning", "error"]),
  },
  {
    name: "log_format",
    section: "Logging",
    flag: "--log-format",
    meta: "FORMAT",
    default: "text",
    doc: "text (for people) or json (one object per line)",
    expected: "text or json",
    reload: true,
    ...oneOf(["text", "json"]),
  },
  {
    name: "log_file",
    section: "Logging",
    flag: "--log-file",
    meta: "FILE",
    type: "path",
    default: null,
    defaultDoc: "stderr",
    doc:
      "Append the master's log records to this file (a symbolic link is refused); SIGUSR1 reopens it (for logrotate)",
    expected: "a file path",
    reload: true,
    parse: text,
  },
  {
    name: "pid_file",
    section: "Program",
    flag: "--pid-file",
    meta: "FILE",
    type: "path",
    default: null,
    doc: "Write the master's pid here at start (a symbolic link is refused); removed at exit",
    expected: "a file path",
    reload: true,
    parse: text,
  },
  {
    name: "metrics_token",
    reload: true,
    section: "Metrics",
    flag: "--metrics-token",
    meta: "TOKEN",
    type: "string",
    default: null,
    secret: true,
    doc:
      "Bearer token (`Authorization: Bearer TOKEN`) every path of the metrics endpoint but /ready and /live asks for; with metrics_basic_auth also set, either is accepted",
    expected: "a token of visible ASCII characters, no spaces",
    parse: token,
  },
  {
    name: "metrics_basic_auth",
    reload: true,
    section: "Metrics",
    flag: "--metrics-basic-auth",
    meta: "USER:PASS",
    type: "string",
    default: null,
    secret: true,
    doc:
      "`user:password` for HTTP basic authentication, which every path of the metrics endpoint but /ready and /live asks for; with metrics_token also set, either is accepted",
    expected: "USER:PASSWORD, the user without a colon, neither empty",
    parse: basicAuth,
  },
] as const satisfies readonly Setting[];

/** Every setting, in the order help and docs show them. */
export const SETTINGS: readonly Setting[] = REGISTRY;

/** One entry of the registry with its literal types (name, type, choices). */
export type SettingEntry = (typeof REGISTRY)[number];

/** The registry by setting name. */
export const SETTINGS_BY_NAME: ReadonlyMap<string, Setting> = new Map(
  SETTINGS.map((s) => [s.name, s]),
);

/**
 * The `FORKLIFT_*` variable of a setting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { envName, SETTINGS_BY_NAME } from "./settings.ts";
 * assert.ok(envName(SETTINGS_BY_NAME.get("workers")!) === "FORKLIFT_WORKERS");
 * ```
 */
export function envName(setting: Setting): string {
  return `FORKLIFT_${setting.name.toUpperCase()}`;
}

/**
 * The `FORKLIFT_*` variables of secret settings: the master keeps them from its workers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SECRET_ENV_NAMES } from "./settings.ts";
 * assert.ok(SECRET_ENV_NAMES.includes("FORKLIFT_METRICS_TOKEN"));
 * ```
 */
export const SECRET_ENV_NAMES: readonly string[] = SETTINGS.filter((s) => s.secret).map(envName);

/**
 * A value as `forklift config` prints it: secrets as `****`, headers as
 * `k=v,…`, unset as an empty string.
 *
 * @example Redact a secret
 * ```ts
 * import assert from "node:assert/strict";
 * import { displayValue, SETTINGS_BY_NAME } from "./settings.ts";
 * assert.ok(displayValue(SETTINGS_BY_NAME.get("otlp_headers")!, { k: "v" }) === "****");
 * ```
 */
export function displayValue(setting: Setting, value: SettingValue): string {
  if (value === null) return "";
  if (setting.secret) return "****";
  if (setting.type === "url") return redactUrl(String(value));
  if (setting.type === "size") return formatSize(Number(value));
  if (typeof value === "object") {
    return Object.entries(value).map(([k, v]) => `${k}=${v}`).join(",");
  }
  return String(value);
}

/**
 * A value as JSON output holds it: secrets as `"****"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonValue, SETTINGS_BY_NAME } from "./settings.ts";
 * assert.ok(jsonValue(SETTINGS_BY_NAME.get("workers")!, 4) === 4);
 * ```
 */
export function jsonValue(setting: Setting, value: SettingValue): SettingValue {
  if (value !== null && setting.secret) return "****";
  if (value !== null && setting.type === "url") return redactUrl(String(value));
  return value;
}
