/**
 * A master that is PID 1, as a container's entry point, is every orphan's
 * parent: this sweeps up the ones that exited, once a second and at stop, so
 * no zombie stays in the process table (what `tini` or `docker run --init`
 * would otherwise do).
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Clock } from "./clock.ts";
import { openZombieReaper, type ZombieReaper } from "../runtime/reaper.ts";
import { isUnreapedWorker } from "../runtime/spawn.ts";

/** How often exited orphans are collected. */
export const SWEEP_MS = 1000;

/** Collects exited orphans while the master runs. */
export class ZombieSweeper {
  readonly #reaper: ZombieReaper;
  readonly #log: Logger;
  readonly #clock: Clock;
  #cancel: () => void = () => {};
  /** Orphans collected so far. */
  reaped = 0;

  private constructor(reaper: ZombieReaper, log: Logger, clock: Clock) {
    this.#reaper = reaper;
    this.#log = log;
    this.#clock = clock;
  }

  /**
   * Starts sweeping; undefined (after one warning) where the C library cannot
   * be called.
   *
   * @example
   * ```ts ignore
   * import { ZombieSweeper } from "./zombie_sweeper.ts";
   * const sweeper = process.pid === 1 ? await ZombieSweeper.start(log, systemClock) : undefined;
   * sweeper?.stop();
   * ```
   */
  static async start(log: Logger, clock: Clock): Promise<ZombieSweeper | undefined> {
    const reaper = await openZombieReaper();
    if (reaper === undefined) {
      log.warn(
        "Running as PID 1 but the C library cannot be called from here: exited orphans will stay zombies (start the container with --init)",
      );
      return undefined;
    }
    log.info("Running as PID 1: exited orphans are reaped");
    const sweeper = new ZombieSweeper(reaper, log, clock);
    sweeper.#arm();
    return sweeper;
  }

  #arm(): void {
    this.#cancel = this.#clock.after(SWEEP_MS, () => {
      this.sweep();
      this.#arm();
    });
  }

  /** Collects every exited orphan now. */
  sweep(): void {
    const pids = this.#reaper.reap(isUnreapedWorker);
    if (pids.length === 0) return;
    this.reaped += pids.length;
    this.#log.debug("Reaped {n} orphaned process(es): {pids}", {
      n: pids.length,
      pids: pids.join(", "),
    });
  }

  /** Sweeps a last time and stops. */
  stop(): void {
    this.#cancel();
    this.sweep();
    this.#reaper.close();
  }
}
