/**
 * How the text of a setting (a flag, a variable, an INI line) becomes its
 * value: one reader per kind of setting, each throwing a `TypeError` or
 * `RangeError` that says what is wrong.
 *
 * @module
 */
import { parseKeyValues } from "../protocol/otlp.ts";
import { TOO_LONG } from "./durations.ts";

/**
 * A whole number no smaller than `min`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { integer } from "./readers.ts";
 * assert.equal(integer(1, " 4 "), 4);
 * assert.throws(() => integer(1, "0"), RangeError);
 * ```
 */
export function integer(min: number, raw: string): number {
  const t = raw.trim();
  if (!/^[+-]?\d+$/.test(t)) throw new TypeError("not an integer");
  const n = Number(t);
  if (!Number.isSafeInteger(n) || n < min) throw new RangeError("out of range");
  return n;
}

const SIZE_UNITS: Readonly<Record<string, number>> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * A size in bytes, written as PM2's `max_memory_restart` takes it: a number
 * with an optional binary `K`, `M` or `G` suffix (`512M` is 512 MiB; `KiB`,
 * `MB` and the like read the same), or bare bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { size } from "./readers.ts";
 * assert.equal(size("512M"), 512 * 1024 * 1024);
 * assert.equal(size("1.5g"), 1.5 * 1024 ** 3);
 * assert.equal(size("0"), 0);
 * assert.throws(() => size("lots"), TypeError);
 * ```
 */
export function size(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?$/i.exec(raw.trim());
  if (!m) throw new TypeError("not a size");
  const n = Math.round(Number(m[1]) * SIZE_UNITS[m[2].toLowerCase()]);
  if (!Number.isSafeInteger(n)) throw new RangeError("out of range");
  return n;
}

/**
 * A size as {@linkcode size} reads it back, in the largest unit that holds
 * it whole: what `forklift config` prints.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatSize, size } from "./readers.ts";
 * assert.equal(formatSize(512 * 1024 * 1024), "512M");
 * assert.equal(formatSize(size("1.5G")), "1536M");
 * assert.equal(formatSize(1000), "1000");
 * ```
 */
export function formatSize(bytes: number): string {
  for (const unit of ["G", "M", "K"]) {
    const n = bytes / SIZE_UNITS[unit.toLowerCase()];
    if (bytes > 0 && Number.isInteger(n)) return `${n}${unit}`;
  }
  return String(bytes);
}

/**
 * What to add to "expected …, got …" when a value is refused: the reason,
 * when it says more than the expected form does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { refusal } from "./readers.ts";
 * assert.ok(refusal(new RangeError("out of range")) === "");
 * ```
 */
export function refusal(error: unknown): string {
  return error instanceof RangeError && error.message === TOO_LONG ? `: ${TOO_LONG}` : "";
}

const TRUE = new Set(["1", "true", "yes", "on"]);
const FALSE = new Set(["0", "false", "no", "off"]);

/**
 * `1/true/yes/on` or `0/false/no/off`, in any case.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { boolean } from "./readers.ts";
 * assert.equal(boolean("Yes"), true);
 * assert.throws(() => boolean("maybe"), TypeError);
 * ```
 */
export function boolean(raw: string): boolean {
  const t = raw.trim().toLowerCase();
  if (TRUE.has(t)) return true;
  if (FALSE.has(t)) return false;
  throw new TypeError("not a boolean");
}

/**
 * An `enum` setting's type, choices and parser, spread into its entry.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { oneOf } from "./readers.ts";
 * const e = oneOf(["gzip", "none"]);
 * assert.equal(e.parse("GZIP"), "gzip");
 * assert.throws(() => e.parse("br"), RangeError);
 * ```
 */
export function oneOf<const C extends readonly string[]>(choices: C) {
  return {
    type: "enum",
    choices,
    parse: (raw: string): C[number] => {
      const t = raw.trim().toLowerCase();
      if (!choices.includes(t)) throw new RangeError("not one of the allowed values");
      return t;
    },
  } as const;
}

/**
 * Reads `HOST:PORT` (`[::1]:9464` for IPv6, `:9464` for all interfaces) or
 * `off`.
 *
 * @example Parse a bind address
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseBind } from "./readers.ts";
 * assert.ok(parseBind("127.0.0.1:9464") === "127.0.0.1:9464");
 * ```
 */
export function parseBind(raw: string): string | null {
  const t = raw.trim();
  if (t.toLowerCase() === "off") return null;
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):(\d{1,5})$/.exec(t);
  if (!m || Number(m[2]) > 65535) throw new TypeError("not HOST:PORT");
  return `${m[1] || "0.0.0.0"}:${Number(m[2])}`;
}

/**
 * An http(s) URL without trailing slashes on its path, or null for none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { url } from "./readers.ts";
 * assert.equal(url("http://c:4318/"), "http://c:4318");
 * assert.equal(url(""), null);
 * assert.throws(() => url("ftp://c"), RangeError);
 * ```
 */
export function url(raw: string): string | null {
  const t = raw.trim();
  if (t === "") return null;
  let u: URL;
  try {
    u = new URL(t);
  } catch {
    throw new TypeError("not a URL");
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new RangeError("not http(s)");
  // Trailing slashes of the path only: in a query or fragment they are data.
  return /[?#]/.test(t) ? t : t.replace(/\/+$/, "");
}

/**
 * Reads OTLP headers written `key=value,key2=value2` (values may be
 * percent-encoded, as `OTEL_EXPORTER_OTLP_HEADERS` specifies).
 *
 * @example Parse two headers
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseHeaders } from "./readers.ts";
 * assert.ok(parseHeaders("a=1,b=2").b === "2");
 * ```
 */
export function parseHeaders(raw: string): Record<string, string> {
  return parseKeyValues(raw);
}

/**
 * `key=value,…` pairs, or null for none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyValuesOrNull } from "./readers.ts";
 * assert.deepEqual(keyValuesOrNull("a=1"), { a: "1" });
 * assert.equal(keyValuesOrNull(""), null);
 * ```
 */
export function keyValuesOrNull(raw: string): Record<string, string> | null {
  const h = parseHeaders(raw);
  return Object.keys(h).length === 0 ? null : h;
}

/**
 * Trimmed text, or null for none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { text } from "./readers.ts";
 * assert.equal(text(" api "), "api");
 * assert.equal(text("  "), null);
 * ```
 */
export function text(raw: string): string | null {
  const t = raw.trim();
  return t === "" ? null : t;
}

/**
 * A bearer token: what an `Authorization` header can carry as is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { token } from "./readers.ts";
 * assert.equal(token("s3cret"), "s3cret");
 * assert.throws(() => token("two words"));
 * ```
 */
export function token(raw: string): string | null {
  const t = raw.trim();
  if (t === "") return null;
  if (!/^[\x21-\x7e]+$/.test(t)) throw new TypeError("not a token");
  return t;
}

/**
 * `user:password` as HTTP basic authentication sends it (RFC 7617: no colon in the user).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { basicAuth } from "./readers.ts";
 * assert.equal(basicAuth("scraper:pw"), "scraper:pw");
 * assert.throws(() => basicAuth("nopassword"), TypeError);
 * ```
 */
export function basicAuth(raw: string): string | null {
  const t = raw.trim();
  if (t === "") return null;
  const colon = t.indexOf(":");
  // Control characters cannot travel in a header, nor be typed at a browser's prompt.
  if (colon <= 0 || colon === t.length - 1 || /\p{Cc}/u.test(t)) {
    throw new TypeError("not user:password");
  }
  return t;
}
