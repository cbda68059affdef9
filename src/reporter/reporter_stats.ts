/**
 * What the reporter tells about itself: where it is in its life and its
 * debug counters, for tests and `forklift status`-style tools.
 *
 * @module
 */

/** Where the reporter is in its life. */
export type HandshakeState =
  | "idle" // not started
  | "standalone" // no forklift master: counts, exports through the standalone seam
  | "hello" // hello sent, waiting for welcome
  | "welcomed" // identity bound, timer armed
  | "stopping" // shutdown or disconnect in progress
  | "stopped";

/** Debug counters of the reporter, for tests and `forklift status`-style tools. */
export interface ReporterStats {
  /** Where the reporter is in its life. */
  handshake: HandshakeState;
  /** Worker slot from `welcome`, when welcomed. */
  worker: number | undefined;
  /** Worker generation from `welcome`, when welcomed. */
  generation: number | undefined;
  /** Timers this reporter has armed in this process, ever. */
  timersArmed: number;
  /** Timers armed now (0 or 1). */
  timersActive: number;
  /** Period of the armed timer in ms (0 when none). */
  periodMs: number;
  /** Last harvest sequence number sent. */
  seq: number;
  /** Highest harvest sequence number acknowledged. */
  acked: number;
  /** Requests completed by wrapped servers and instrumented handlers. */
  requests: number;
  /** Master messages that failed validation (ignored). */
  invalidMessages: number;
  /** Servers listening now. */
  servers: number;
  /** Times the `postFork` callbacks were run (0 or 1). */
  postForkRuns: number;
}
