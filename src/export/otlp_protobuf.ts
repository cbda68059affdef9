/**
 * OTLP/HTTP's default encoding: an `ExportMetricsServiceRequest` as protobuf
 * bytes, written field by field as `opentelemetry/proto/metrics/v1` numbers
 * them, and the `partial_success` of the response read back.
 *
 * @module
 */
import type { Attributes, AttributeValue } from "../protocol/messages.ts";
import type {
  OtlpBatch,
  OtlpHistogramPoint,
  OtlpMetric,
  OtlpNumberPoint,
} from "../protocol/otlp.ts";

const encoder = new TextEncoder();

/**
 * A protobuf writer on one growing buffer. A nested message reserves one
 * byte for its length and moves its body along in the rare case the length
 * needs more: no per-message buffers, no second pass.
 */
class Writer {
  #buf = new Uint8Array(64 * 1024);
  #view = new DataView(this.#buf.buffer);
  #at = 0;

  #room(n: number): void {
    if (this.#at + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#at + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#at));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  /** A non-negative integer up to 2^53. */
  uint(n: number): void {
    this.#room(10);
    while (n > 0x7f) {
      this.#buf[this.#at++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.#buf[this.#at++] = n;
  }

  /** Any 64-bit integer, two's complement for negatives (int64). */
  int64(n: number): void {
    if (n >= 0) return this.uint(n);
    let v = BigInt.asUintN(64, BigInt(n));
    this.#room(10);
    while (v > 0x7fn) {
      this.#buf[this.#at++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.#buf[this.#at++] = Number(v);
  }

  tag(field: number, wire: number): void {
    this.uint((field << 3) | wire);
  }

  fixed64(n: number | bigint): void {
    this.#room(8);
    if (typeof n === "bigint") this.#view.setBigUint64(this.#at, n, true);
    else {
      this.#view.setUint32(this.#at, n % 0x1_0000_0000, true);
      this.#view.setUint32(this.#at + 4, Math.floor(n / 0x1_0000_0000), true);
    }
    this.#at += 8;
  }

  double(n: number): void {
    this.#room(8);
    this.#view.setFloat64(this.#at, n, true);
    this.#at += 8;
  }

  /** Starts a length-delimited field; returns what {@linkcode Writer.end} takes. */
  begin(field: number): number {
    this.tag(field, 2);
    this.#room(1);
    return this.#at++;
  }

  end(lengthAt: number): void {
    const len = this.#at - lengthAt - 1;
    let size = 1;
    for (let v = len; v > 0x7f; v = Math.floor(v / 0x80)) size++;
    if (size > 1) {
      this.#room(size - 1);
      this.#buf.copyWithin(lengthAt + size, lengthAt + 1, this.#at);
      this.#at += size - 1;
    }
    const at = this.#at;
    this.#at = lengthAt;
    this.uint(len);
    this.#at = at;
  }

  text(field: number, s: string): void {
    const at = this.begin(field);
    this.#room(s.length * 3);
    this.#at += encoder.encodeInto(s, this.#buf.subarray(this.#at)).written;
    this.end(at);
  }

  finish(): Uint8Array {
    return this.#buf.slice(0, this.#at);
  }
}

function string(w: Writer, field: number, s: string | undefined): void {
  if (s) w.text(field, s);
}

function message(w: Writer, field: number, write: (m: Writer) => void): void {
  const at = w.begin(field);
  write(w);
  w.end(at);
}

function anyValue(w: Writer, v: AttributeValue): void {
  if (typeof v === "string") return w.text(1, v);
  if (typeof v === "boolean") {
    w.tag(2, 0);
    return w.uint(v ? 1 : 0);
  }
  if (Number.isSafeInteger(v)) {
    w.tag(3, 0);
    return w.int64(v);
  }
  w.tag(4, 1);
  w.double(v);
}

function attributes(w: Writer, field: number, attrs: Attributes): void {
  for (const [key, v] of Object.entries(attrs)) {
    message(w, field, (kv) => {
      string(kv, 1, key);
      message(kv, 2, (av) => anyValue(av, v));
    });
  }
}

/** Fields 2 and 3 of both point messages. */
function times(w: Writer, p: OtlpNumberPoint | OtlpHistogramPoint): void {
  w.tag(2, 1);
  w.fixed64(p.startTimeUnixNano);
  w.tag(3, 1);
  w.fixed64(p.timeUnixNano);
}

function numberPoint(w: Writer, p: OtlpNumberPoint): void {
  times(w, p);
  w.tag(4, 1);
  w.double(p.value);
  attributes(w, 7, p.attributes);
}

function histogramPoint(w: Writer, p: OtlpHistogramPoint): void {
  times(w, p);
  w.tag(4, 1);
  w.fixed64(p.count);
  w.tag(5, 1);
  w.double(p.sum);
  message(w, 6, (b) => p.bucketCounts.forEach((c) => b.fixed64(c)));
  if (p.explicitBounds.length > 0) {
    message(w, 7, (b) => p.explicitBounds.forEach((x) => b.double(x)));
  }
  attributes(w, 9, p.attributes);
  if (p.min !== undefined) {
    w.tag(11, 1);
    w.double(p.min);
  }
  if (p.max !== undefined) {
    w.tag(12, 1);
    w.double(p.max);
  }
}

function metric(w: Writer, m: OtlpMetric): void {
  string(w, 1, m.name);
  string(w, 2, m.description);
  string(w, 3, m.unit);
  switch (m.type) {
    case "gauge":
      return message(w, 5, (g) => m.points.forEach((p) => message(g, 1, (d) => numberPoint(d, p))));
    case "sum":
      return message(w, 7, (s) => {
        m.points.forEach((p) => message(s, 1, (d) => numberPoint(d, p)));
        s.tag(2, 0);
        s.uint(m.temporality);
        if (m.isMonotonic) {
          s.tag(3, 0);
          s.uint(1);
        }
      });
    case "histogram":
      return message(w, 9, (h) => {
        m.points.forEach((p) => message(h, 1, (d) => histogramPoint(d, p)));
        h.tag(2, 0);
        h.uint(m.temporality);
      });
  }
}

/**
 * Encodes a batch as an OTLP `ExportMetricsServiceRequest` in protobuf.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeOtlpProtobuf } from "./otlp_protobuf.ts";
 * const bytes = encodeOtlpProtobuf({
 *   resource: { "service.name": "api" },
 *   scope: { name: "forklift", version: "0.1.0" },
 *   metrics: [],
 * });
 * assert.ok(bytes[0] === 0x0a); // field 1, resource_metrics
 * ```
 */
export function encodeOtlpProtobuf(batch: OtlpBatch): Uint8Array {
  const w = new Writer();
  message(w, 1, (rm) => {
    message(rm, 1, (r) => attributes(r, 1, batch.resource));
    message(rm, 2, (sm) => {
      message(sm, 1, (s) => {
        string(s, 1, batch.scope.name);
        string(s, 2, batch.scope.version);
      });
      for (const m of batch.metrics) message(sm, 2, (mw) => metric(mw, m));
    });
  });
  return w.finish();
}

/** What a collector said it rejected, from an `ExportMetricsServiceResponse`. */
export interface PartialSuccess {
  rejectedDataPoints: number;
  errorMessage: string;
}

/** Reads a varint at `at`; returns it and the next offset. */
function readVarint(b: Uint8Array, at: number): [bigint, number] {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    if (at >= b.length) throw new RangeError("truncated varint");
    const byte = b[at++];
    v |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [v, at];
    shift += 7n;
    if (shift > 63n) throw new RangeError("varint too long");
  }
}

/** Walks the fields of one message: calls `on(field, wire, value, bytes)`. */
function fields(
  b: Uint8Array,
  on: (field: number, value: bigint, bytes: Uint8Array | undefined) => void,
): void {
  let at = 0;
  while (at < b.length) {
    const [key, next] = readVarint(b, at);
    at = next;
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) {
      const [v, n] = readVarint(b, at);
      at = n;
      on(field, v, undefined);
    } else if (wire === 2) {
      const [len, n] = readVarint(b, at);
      const end = n + Number(len);
      if (end > b.length) throw new RangeError("truncated field");
      on(field, 0n, b.subarray(n, end));
      at = end;
    } else if (wire === 1 || wire === 5) {
      at += wire === 1 ? 8 : 4;
    } else {
      throw new RangeError(`unknown wire type ${wire}`);
    }
  }
  if (at !== b.length) throw new RangeError("truncated field");
}

/**
 * The `partial_success` of a protobuf `ExportMetricsServiceResponse`, or
 * `undefined` when the collector took everything. Throws a `RangeError` for
 * bytes that are not protobuf.
 *
 * @example An empty response: all accepted
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePartialSuccess } from "./otlp_protobuf.ts";
 * assert.ok(decodePartialSuccess(new Uint8Array()) === undefined);
 * ```
 */
export function decodePartialSuccess(bytes: Uint8Array): PartialSuccess | undefined {
  let result: PartialSuccess | undefined;
  fields(bytes, (field, _v, inner) => {
    if (field !== 1 || inner === undefined) return;
    const ps: PartialSuccess = { rejectedDataPoints: 0, errorMessage: "" };
    fields(inner, (f, v, b) => {
      if (f === 1) ps.rejectedDataPoints = Number(BigInt.asIntN(64, v));
      if (f === 2 && b) ps.errorMessage = new TextDecoder().decode(b);
    });
    result = ps;
  });
  return result && (result.rejectedDataPoints !== 0 || result.errorMessage !== "")
    ? result
    : undefined;
}
