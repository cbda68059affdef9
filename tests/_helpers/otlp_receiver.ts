/**
 * A local OTLP/HTTP receiver for tests: it decodes every request with the
 * OTLP protobuf definitions the OpenTelemetry project publishes (or as JSON),
 * keeps it, and answers with the statuses a test scripts.
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import { gunzipSync } from "node:zlib";
// The generated protobuf classes of opentelemetry-proto, as the OpenTelemetry JS SDK ships them.
import generated from "@opentelemetry/otlp-transformer/build/src/generated/root.js";

// deno-lint-ignore no-explicit-any
const proto = (generated as any).opentelemetry.proto;
const Request = proto.collector.metrics.v1.ExportMetricsServiceRequest;
const Response = proto.collector.metrics.v1.ExportMetricsServiceResponse;

/** Decodes protobuf bytes into the OTLP/JSON shape (64-bit integers as strings, enums as numbers). */
export function decodeProtobufRequest(bytes: Uint8Array): Record<string, unknown> {
  const message = Request.decode(bytes);
  return Request.toObject(message, { longs: String, enums: Number, defaults: false });
}

/**
 * Whether an OTLP/JSON body is a valid `ExportMetricsServiceRequest`: read
 * into the protobuf message and written back, it must come out the same (a
 * misnamed field or a wrongly typed value would be dropped or changed).
 */
export function isValidJsonRequest(body: unknown): boolean {
  try {
    const back = Request.toObject(Request.fromObject(body), {
      longs: String,
      enums: Number,
      defaults: false,
    });
    return JSON.stringify(sortKeys(back)) === JSON.stringify(sortKeys(body));
  } catch {
    return false;
  }
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries(
    Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
  );
}

/** Encodes a protobuf `ExportMetricsServiceResponse` with a partial success. */
export function partialSuccessResponse(rejected: number, message: string): Uint8Array {
  return Response.encode({
    partialSuccess: { rejectedDataPoints: rejected, errorMessage: message },
  })
    .finish();
}

/** One request the receiver got. */
export interface Received {
  at: number;
  /** The request's path and query. */
  path: string;
  headers: IncomingMessage["headers"];
  contentType: string;
  /** The body as sent (maybe gzipped). */
  wireBytes: number;
  /** Decoded with the OTLP definitions (protobuf), or read back through them unchanged (JSON). */
  valid: boolean;
  /** The decoded request, in the OTLP/JSON shape. */
  // deno-lint-ignore no-explicit-any
  body: any;
  status: number;
}

/** An answer to script: a status, headers and body. */
export interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  /** Answer this long after the request arrived. */
  delayMs?: number;
  /**
   * Stream a body of this many bytes after `body`, made as the client reads
   * it (nothing held), stopping when the client goes: `streamed` says how far.
   */
  streamBytes?: number;
}

/** A 64 KiB piece of a streamed answer. */
const PIECE = new Uint8Array(64 * 1024).fill(0x78);

/** A receiver on 127.0.0.1 with an ephemeral port. */
export class OtlpReceiver {
  readonly received: Received[] = [];
  /** Answers for the next requests, in order; 200 once they run out. */
  answers: Answer[] = [];
  /** The most requests open at once. */
  maxInFlight = 0;
  /** Bytes of streamed answers the client took before it stopped reading or went. */
  streamed = 0;
  #inFlight = 0;
  #server: Server;
  port = 0;

  constructor() {
    this.#server = createServer((req, res) => {
      this.maxInFlight = Math.max(this.maxInFlight, ++this.#inFlight);
      res.on("close", () => this.#inFlight--);
      const chunks: Uint8Array[] = [];
      req.on("data", (c: Uint8Array) => chunks.push(c));
      req.on("end", () => {
        const raw = Buffer.concat(chunks);
        const bytes = req.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw;
        const contentType = String(req.headers["content-type"] ?? "");
        let body: unknown = undefined;
        let valid = false;
        try {
          body = contentType.includes("json")
            ? JSON.parse(new TextDecoder().decode(bytes))
            : decodeProtobufRequest(new Uint8Array(bytes));
          valid = contentType.includes("json") ? isValidJsonRequest(body) : true;
        } catch {
          // Kept as invalid: the test says so.
        }
        const answer = this.answers.shift() ?? { status: 200 };
        this.received.push({
          at: performance.now(),
          path: req.url ?? "",
          headers: req.headers,
          contentType,
          valid,
          wireBytes: raw.length,
          body,
          status: answer.status,
        });
        const timer = setTimeout(() => {
          res.writeHead(answer.status, answer.headers ?? {});
          if (answer.streamBytes === undefined) return res.end(answer.body ?? "");
          if (answer.body !== undefined) res.write(answer.body);
          let left = answer.streamBytes;
          const pump = () => {
            while (left > 0 && !res.destroyed) {
              const piece = left >= PIECE.length ? PIECE : PIECE.subarray(0, left);
              left -= piece.length;
              this.streamed += piece.length;
              if (!res.write(piece)) return void res.once("drain", pump);
            }
            if (left === 0) res.end();
          };
          pump();
        }, answer.delayMs ?? 0);
        // A client that gives up must not leave an answer armed behind it.
        res.on("close", () => clearTimeout(timer));
      });
    });
  }

  /** Listens; resolves to the base URL (`http://127.0.0.1:PORT`). */
  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.port = (this.#server.address() as { port: number }).port;
    return `http://127.0.0.1:${this.port}`;
  }

  /** Requests answered 2xx. */
  get accepted(): Received[] {
    return this.received.filter((r) => r.status >= 200 && r.status < 300);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections?.();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
