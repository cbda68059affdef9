/**
 * The credential check of the metrics endpoint: `metrics_token` (a bearer
 * token) and `metrics_basic_auth` (`user:password`), compared in constant
 * time, and what a client sends to pass it.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { formatHostPort, parseHostPort } from "../protocol/host_port.ts";

/** The credentials the endpoint asks for; null for one that is not set. */
export interface MetricsCredentials {
  /** `metrics_token`: sent as `Authorization: Bearer TOKEN`. */
  token: string | null;
  /** `metrics_basic_auth`: `user:password`, sent as `Authorization: Basic base64(…)`. */
  basicAuth: string | null;
}

/** Paths answered without a credential: probes that cannot carry one (see the README's security section). */
export const OPEN_PATHS: ReadonlySet<string> = new Set(["/ready", "/live"]);

const REALM = 'realm="forklift"';

function sha256(data: string | Uint8Array): Uint8Array {
  return createHash("sha256").update(data).digest();
}

/** Standard base64, padded or not: anything else cannot be a credential. */
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** A check of `Authorization` headers against set credentials. */
export interface MetricsGate {
  /** Whether the header carries a credential that is set. */
  admits(authorization: string | null): boolean;
  /** The `WWW-Authenticate` value of a 401: one challenge per scheme that is set. */
  challenge: string;
}

/**
 * The gate for `credentials`, or undefined when neither is set (the endpoint
 * is open).
 *
 * Both sides of every comparison are SHA-256 digests, compared with
 * `timingSafeEqual`: the time taken depends neither on how long the
 * credential is nor on how much of it a guess got right. Both schemes are
 * compared on every request, so it does not tell which of them is set either.
 *
 * @example Admit the right token only
 * ```ts
 * import assert from "node:assert/strict";
 * import { metricsGate } from "./auth.ts";
 * const gate = metricsGate({ token: "s3cret", basicAuth: null })!;
 * assert.ok(gate.admits("Bearer s3cret"));
 * assert.ok(!gate.admits("Bearer s3cre"));
 * assert.ok(!gate.admits(null));
 * assert.equal(gate.challenge, 'Bearer realm="forklift"');
 * ```
 */
export function metricsGate(credentials: MetricsCredentials): MetricsGate | undefined {
  const { token, basicAuth } = credentials;
  if (token === null && basicAuth === null) return undefined;
  // An unset scheme compares against a digest no input has, so both are always compared.
  const unset = () => new Uint8Array(randomBytes(32));
  const tokenDigest = token === null ? unset() : sha256(token);
  const basicDigest = basicAuth === null ? unset() : sha256(basicAuth);
  const challenges: string[] = [];
  if (basicAuth !== null) challenges.push(`Basic ${REALM}, charset="UTF-8"`);
  if (token !== null) challenges.push(`Bearer ${REALM}`);
  return {
    challenge: challenges.join(", "),
    admits(authorization) {
      const m = /^\s*([A-Za-z]+) +([^ ]+)\s*$/.exec(authorization ?? "");
      const scheme = m?.[1].toLowerCase();
      const value = m?.[2] ?? "";
      const bearer = scheme === "bearer" ? value : "";
      const basic = scheme === "basic" && BASE64.test(value)
        ? new Uint8Array(Buffer.from(value, "base64"))
        : new Uint8Array(0);
      const bearerOk = timingSafeEqual(sha256(bearer), tokenDigest);
      const basicOk = timingSafeEqual(sha256(basic), basicDigest);
      return (bearerOk && scheme === "bearer") || (basicOk && scheme === "basic");
    },
  };
}

/**
 * The `Authorization` header a client of the endpoint sends (`forklift
 * status`): the token when it is set, else the basic credentials; undefined
 * when neither is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { authorizationHeader } from "./auth.ts";
 * assert.equal(authorizationHeader({ token: null, basicAuth: "u:p" }), "Basic dTpw");
 * assert.equal(authorizationHeader({ token: "t", basicAuth: "u:p" }), "Bearer t");
 * ```
 */
export function authorizationHeader(credentials: MetricsCredentials): string | undefined {
  if (credentials.token !== null) return `Bearer ${credentials.token}`;
  if (credentials.basicAuth !== null) {
    return `Basic ${Buffer.from(credentials.basicAuth, "utf8").toString("base64")}`;
  }
  return undefined;
}

/**
 * Whether `host` is reached from this machine only: `localhost`, 127.0.0.0/8,
 * `::1` (also as `::ffff:127.x.y.z`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isLoopback } from "./auth.ts";
 * assert.ok(isLoopback("127.0.0.1") && isLoopback("::1") && isLoopback("localhost"));
 * assert.ok(!isLoopback("0.0.0.0") && !isLoopback("::") && !isLoopback("10.0.0.1"));
 * ```
 */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  const v4 = h.startsWith("::ffff:") ? h.slice(7) : h;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4)) return true;
  return /^(0{0,4}:){2,7}0{0,3}1$/.test(h);
}

/**
 * The one-line warning for an endpoint bound beyond loopback with no
 * credential set; undefined when it is guarded, loopback-only or off.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exposureWarning } from "./auth.ts";
 * const none = { metricsToken: null, metricsBasicAuth: null };
 * assert.match(exposureWarning({ metricsBind: "0.0.0.0:9464", ...none })!, /metrics_token/);
 * assert.equal(exposureWarning({ metricsBind: "127.0.0.1:9464", ...none }), undefined);
 * assert.equal(exposureWarning({ metricsBind: "0.0.0.0:9464", ...none, metricsToken: "t" }), undefined);
 * ```
 */
export function exposureWarning(config: {
  metricsBind: string | null;
  metricsToken: string | null;
  metricsBasicAuth: string | null;
}): string | undefined {
  const { metricsBind: bind, metricsToken, metricsBasicAuth } = config;
  if (bind === null || metricsToken !== null || metricsBasicAuth !== null) return undefined;
  const target = parseHostPort(bind);
  if (target === undefined || isLoopback(target.host)) return undefined;
  return `The metrics endpoint at ${
    formatHostPort(target.host, target.port)
  } is not on loopback and asks for no credential: whoever reaches it reads /metrics and /status; set metrics_token or metrics_basic_auth, or bind it to 127.0.0.1`;
}
