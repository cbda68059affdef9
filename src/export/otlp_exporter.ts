/**
 * Pushes the master's state to an OTLP/HTTP collector every export interval:
 * protobuf or JSON, gzip on request, a timeout per request, retries with
 * exponential backoff and jitter on 429, 502, 503, 504 and network errors
 * (honouring a `Retry-After` longer than the backoff), one batch dropped with
 * one warning on any other error status, never two requests in flight, and a
 * final export on stop that never outlasts the time the stop gives it.
 *
 * A collector's answer is hostile input like any other: redirects are not
 * followed (the headers carry the API key), and no more than
 * {@linkcode MAX_ANSWER_BYTES} of a body are read.
 *
 * While the collector is down nothing queues up: each retry sends the state
 * as it is then, so the memory held is the series themselves, and nothing
 * counted meanwhile is lost once the collector answers.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { backoff, type BackoffPolicy } from "../protocol/backoff.ts";
import type { MetricDelta } from "../protocol/messages.ts";
import { type OtlpBatch, otlpJson, redactUrl, urlCredentials } from "../protocol/otlp.ts";
import type { OtlpBatcher, PendingBatch } from "./otlp_batch.ts";
import { decodePartialSuccess, encodeOtlpProtobuf, type PartialSuccess } from "./otlp_protobuf.ts";

/** `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`. */
export type OtlpProtocol = "http/protobuf" | "http/json";

/** Options of {@linkcode OtlpExporter}. */
export interface OtlpExporterOptions {
  /** The full metrics URL (`…/v1/metrics`). */
  url: string;
  protocol: OtlpProtocol;
  gzip: boolean;
  /** Secret: sent, never logged. */
  headers: Record<string, string>;
  timeoutMs: number;
  intervalMs: number;
  batcher: OtlpBatcher;
  /** The cumulative state to export now. */
  collect: () => MetricDelta[];
  log: Logger;
  /** Unix time in ms. */
  now?: () => number;
  random?: () => number;
  fetch?: typeof fetch;
}

/** What the exporter has done, for the master's own metrics. */
export interface OtlpExportStats {
  /** Batches the collector accepted. */
  exports: number;
  /** Requests that failed (each retry counts). */
  failures: number;
  /** Requests repeated after a retryable failure. */
  retries: number;
  /** Batches given up: refused, redirected, or not sent by the end of a stop. */
  dropped: number;
  /** Request body bytes sent, as on the wire. */
  bytes: number;
}

/** Retries wait from 1 s, doubling up to 60 s, spread by ±20%. */
const RETRY_BACKOFF: BackoffPolicy = { firstMs: 1_000, maxMs: 60_000, jitter: 0.2 };
/** The longest `Retry-After` honoured. */
const MAX_RETRY_AFTER_MS = 300_000;
const RETRYABLE = new Set([429, 502, 503, 504]);
/**
 * The most of a collector's answer read: a partial success fits in far less,
 * and a collector that answers gigabytes must not cost the master more.
 */
export const MAX_ANSWER_BYTES = 64 * 1024;
/** The most of a collector's words (a redirect's target, a rejection's reason) put in the log. */
const MAX_SHOWN_CHARS = 200;

/** What a request's answer means for the batch. */
export type Outcome =
  | { kind: "ok"; partial?: PartialSuccess }
  | { kind: "retry"; why: string; afterMs?: number }
  | { kind: "drop"; why: string; redirect?: boolean };

/**
 * The delay before retry `n` (0-based): doubling from 1 s to 60 s, spread by
 * ±20% so that many masters do not retry in step.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { retryDelay } from "./otlp_exporter.ts";
 * assert.ok(retryDelay(0, () => 0.5) === 1000 && retryDelay(10, () => 0.5) === 60_000);
 * ```
 */
export function retryDelay(n: number, random: () => number = Math.random): number {
  return backoff(n, RETRY_BACKOFF, random);
}

/**
 * The wait before retry `n` after an answer that asked for `afterMs`: the
 * collector may ask for longer than the backoff, never for less, so a
 * `Retry-After: 0` cannot turn the exporter into a loop of requests.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { retryWait } from "./otlp_exporter.ts";
 * assert.ok(retryWait(0, 0, () => 0.5) === 1000 && retryWait(0, 5000, () => 0.5) === 5000);
 * ```
 */
export function retryWait(
  n: number,
  afterMs: number | undefined,
  random: () => number = Math.random,
): number {
  return Math.max(retryDelay(n, random), afterMs ?? 0);
}

/**
 * A `Retry-After` value (seconds, or an HTTP date) in ms from `nowMs`, or
 * `undefined` when absent or unreadable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRetryAfter } from "./otlp_exporter.ts";
 * assert.ok(parseRetryAfter("3", 0) === 3000);
 * ```
 */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const t = value.trim();
  const ms = /^\d+$/.test(t) ? Number(t) * 1000 : Date.parse(t) - nowMs;
  return Number.isFinite(ms) ? Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms)) : undefined;
}

async function gzip(body: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([body as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * The master's OTLP exporter.
 *
 * @example
 * ```ts ignore
 * import { OtlpExporter } from "./otlp_exporter.ts";
 * const exporter = new OtlpExporter({ url, protocol: "http/protobuf", gzip: false, headers: {},
 *   timeoutMs: 10_000, intervalMs: 60_000, batcher, collect, log });
 * exporter.start();
 * await exporter.shutdown(5_000);
 * ```
 */
export class OtlpExporter {
  readonly stats: OtlpExportStats = { exports: 0, failures: 0, retries: 0, dropped: 0, bytes: 0 };
  #o: OtlpExporterOptions;
  #timer?: ReturnType<typeof setTimeout>;
  #running?: Promise<void>;
  #stopped = false;
  /** Cuts a retry's wait short (shutdown). */
  #wake?: () => void;
  /** Aborts whatever request is in flight once a stop's time is up. */
  #halt = new AbortController();
  /** A redirect is said once: every export after it would say the same. */
  #redirectSaid = false;

  constructor(options: OtlpExporterOptions) {
    this.#o = options;
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }

  /** Exports every interval from now on. */
  start(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    this.#schedule();
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      this.#running = this.#cycle().catch((e) => {
        // An export that failed in an unforeseen way fails alone: the master goes on.
        this.stats.failures++;
        this.#o.log.warn("OTLP export to {url} failed: {error}", {
          url: redactUrl(this.#o.url),
          error: oneLine(String((e as Error)?.message ?? e)),
        });
      }).finally(() => {
        this.#running = undefined;
        if (!this.#stopped) this.#schedule();
      });
    }, this.#o.intervalMs);
    // The master lives for its workers, not for this timer.
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /**
   * Stops the interval and sends what is left, once, within `withinMs`: an
   * export under way gives up its retries and the final one carries its data.
   * Resolves within `withinMs` whatever the collector does; what could not be
   * sent by then is abandoned, counted as a dropped batch and said in one line.
   */
  async shutdown(withinMs: number): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#wake?.();
    const start = performance.now();
    const left = () => Math.max(0, withinMs - (performance.now() - start));
    const giveUp = setTimeout(() => this.#halt.abort(), left());
    try {
      await this.#running;
      if (this.#halt.signal.aborted) return this.#abandoned(start, undefined);
      const pending = this.#o.batcher.build(this.#o.collect(), this.#now());
      if (pending.points === 0) return;
      const outcome = await this.#send(pending, Math.min(left(), this.#o.timeoutMs));
      if (this.#halt.signal.aborted) {
        this.stats.failures++;
        return this.#abandoned(start, pending.points);
      }
      this.#settle(pending, outcome, 0);
      if (outcome.kind === "retry") {
        this.stats.dropped++;
        this.#o.log.warn("Final OTLP export to {url} failed ({why}); its data is lost", {
          url: redactUrl(this.#o.url),
          why: outcome.why,
        });
      }
    } finally {
      clearTimeout(giveUp);
    }
  }

  #abandoned(start: number, points: number | undefined): void {
    this.stats.dropped++;
    this.#o.log.warn(
      "Final OTLP export to {url} abandoned after {ms} ms, the time the stop allows; {what}",
      {
        url: redactUrl(this.#o.url),
        ms: Math.round(performance.now() - start),
        what: points === undefined
          ? "the export under way got no answer"
          : `${points} data point(s) not sent`,
      },
    );
  }

  /** One export, retried until the collector takes it, gives it up, or shutdown. */
  async #cycle(): Promise<void> {
    for (let attempt = 0; !this.#stopped; attempt++) {
      const pending = this.#o.batcher.build(this.#o.collect(), this.#now());
      if (pending.points === 0) return pending.commit();
      const outcome = await this.#send(pending, this.#o.timeoutMs);
      if (!this.#settle(pending, outcome, attempt)) return;
      // A stop came while the request was out: the final export carries its data.
      if (outcome.kind !== "retry" || this.#stopped) return;
      const delay = retryWait(attempt, outcome.afterMs, this.#o.random);
      if (attempt === 0) {
        this.#o.log.warn("OTLP export to {url} failed ({why}); retrying in {s} s", {
          url: redactUrl(this.#o.url),
          why: outcome.why,
          s: Math.round(delay / 100) / 10,
        });
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = undefined;
      if (!this.#stopped) this.stats.retries++;
    }
  }

  /** Counts and logs an outcome; true when the cycle should go on (a retry). */
  #settle(pending: PendingBatch, outcome: Outcome, attempt: number): boolean {
    switch (outcome.kind) {
      case "ok":
        pending.commit();
        this.stats.exports++;
        if (attempt > 0) {
          this.#o.log.info("OTLP export to {url} succeeded after {n} retries", {
            url: redactUrl(this.#o.url),
            n: attempt,
          });
        }
        if (outcome.partial) {
          this.#o.log.warn("The collector rejected {n} data point(s): {message}", {
            n: outcome.partial.rejectedDataPoints,
            message: oneLine(outcome.partial.errorMessage) || "(no reason given)",
          });
        }
        return false;
      case "drop":
        // A batch the collector will never take must not block the ones after it.
        pending.commit();
        this.stats.failures++;
        this.stats.dropped++;
        if (outcome.redirect) {
          if (this.#redirectSaid) return false;
          this.#redirectSaid = true;
        }
        this.#o.log.warn("OTLP export to {url} refused ({why}); dropped {n} data point(s)", {
          url: redactUrl(this.#o.url),
          why: outcome.why,
          n: pending.points,
        });
        return false;
      case "retry":
        this.stats.failures++;
        return true;
    }
  }

  async #send(pending: PendingBatch, timeoutMs: number): Promise<Outcome> {
    const { outcome, bytes } = await sendOtlp(pending.batch, {
      ...this.#o,
      timeoutMs,
      signal: this.#halt.signal,
    });
    this.stats.bytes += bytes;
    return outcome;
  }
}

/** Where and how {@linkcode sendOtlp} posts. */
export type SendOptions =
  & Pick<
    OtlpExporterOptions,
    "url" | "protocol" | "gzip" | "headers" | "timeoutMs" | "now" | "fetch"
  >
  & {
    /** Aborts the request early (a stop whose time is up). */
    signal?: AbortSignal;
  };

/**
 * Posts one batch, once; resolves to what to do next and the body bytes sent
 * (0 when no answer came). Never throws.
 *
 * @example
 * ```ts ignore
 * import { sendOtlp } from "./otlp_exporter.ts";
 * const { outcome } = await sendOtlp(batch, { url, protocol: "http/json", gzip: false, headers: {}, timeoutMs: 5000 });
 * console.log(outcome.kind);
 * ```
 */
export async function sendOtlp(
  batch: OtlpBatch,
  o: SendOptions,
): Promise<{ outcome: Outcome; bytes: number }> {
  const json = o.protocol === "http/json";
  let body: Uint8Array = json
    ? new TextEncoder().encode(JSON.stringify(otlpJson(batch)))
    : encodeOtlpProtobuf(batch);
  const { url, authorization } = urlCredentials(o.url);
  const headers: Record<string, string> = {
    ...(authorization === undefined ? {} : { authorization }),
    ...o.headers,
    "content-type": json ? "application/json" : "application/x-protobuf",
  };
  if (o.gzip) {
    body = await gzip(body);
    headers["content-encoding"] = "gzip";
  }
  const signal = o.signal === undefined
    ? AbortSignal.timeout(o.timeoutMs)
    : AbortSignal.any([AbortSignal.timeout(o.timeoutMs), o.signal]);
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(url, {
      method: "POST",
      headers,
      body: body as BodyInit,
      signal,
      // Following would send the headers, API key and all, wherever the answer points.
      redirect: "manual",
    });
  } catch (e) {
    const err = e as Error;
    const why = err.name === "TimeoutError"
      ? `no answer within ${o.timeoutMs} ms`
      : String(err.message).split(url).join(redactUrl(url));
    return { outcome: { kind: "retry", why: oneLine(why.split("\n")[0]) }, bytes: 0 };
  }
  const status = `HTTP ${res.status}`;
  const bytes = body.length;
  if (res.ok) {
    const answer = await readPrefix(res.body, MAX_ANSWER_BYTES);
    return { outcome: { kind: "ok", partial: readPartialSuccess(answer, res) }, bytes };
  }
  // Nothing but a success's body is of use.
  await res.body?.cancel().catch(() => {});
  if (res.type === "opaqueredirect" || (res.status >= 300 && res.status < 400)) {
    const to = shownLocation(res.headers.get("location"), url);
    const why = `${status}: collector redirected to ${to}; forklift does not follow redirects`;
    return { outcome: { kind: "drop", why, redirect: true }, bytes };
  }
  if (RETRYABLE.has(res.status)) {
    const afterMs = parseRetryAfter(res.headers.get("retry-after"), (o.now ?? Date.now)());
    return { outcome: { kind: "retry", why: status, afterMs }, bytes };
  }
  // The specification retries only the codes above; anything else would fail again.
  return { outcome: { kind: "drop", why: status }, bytes };
}

/** A redirect's target, fit for one log line: resolved and redacted. */
function shownLocation(location: string | null, base: string): string {
  if (location === null) return "(no Location)";
  let target = location;
  try {
    target = new URL(location, base).href;
  } catch {
    // Shown as given, redacted as far as it reads.
  }
  return oneLine(redactUrl(target));
}

/** Text a collector chose, fit for one log line: control characters escaped, cut short. */
function oneLine(text: string): string {
  // deno-lint-ignore no-control-regex
  const line = text.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
  return line.length > MAX_SHOWN_CHARS ? `${line.slice(0, MAX_SHOWN_CHARS)}…` : line;
}

/**
 * The first `max` bytes of a body; the rest is cancelled unread, so a huge
 * or endless answer costs no more than that. A body that breaks off (the
 * request's time is up) gives what came.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readPrefix } from "./otlp_exporter.ts";
 * const bytes = await readPrefix(new Response("x".repeat(100)).body, 10);
 * assert.ok(bytes.length === 10);
 * ```
 */
export async function readPrefix(
  body: ReadableStream<Uint8Array> | null,
  max: number,
): Promise<Uint8Array> {
  if (body === null) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  try {
    while (n < max) {
      const { done, value } = await reader.read();
      if (done) break;
      const part = value.subarray(0, max - n);
      chunks.push(part);
      n += part.length;
    }
  } catch {
    // What came before the break is all there is.
  } finally {
    reader.cancel().catch(() => {});
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** The response's partial success, protobuf or JSON; undefined when unreadable or empty. */
function readPartialSuccess(body: Uint8Array, res: Response): PartialSuccess | undefined {
  if (body.length === 0) return undefined;
  try {
    if ((res.headers.get("content-type") ?? "").includes("json")) {
      const ps = JSON.parse(new TextDecoder().decode(body))?.partialSuccess;
      const n = Number(ps?.rejectedDataPoints ?? 0);
      const message = String(ps?.errorMessage ?? "");
      return n !== 0 || message !== ""
        ? { rejectedDataPoints: n, errorMessage: message }
        : undefined;
    }
    return decodePartialSuccess(body);
  } catch {
    return undefined;
  }
}
