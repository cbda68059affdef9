/**
 * When the master's services (the metrics endpoint, the OTLP export) start,
 * and what another program on the workers' port means: a part of the
 * supervisor's policy, pure like it, that answers with actions.
 *
 * @module
 */
import { PORT_RECHECK_MS, SERVICES_DELAY_MS } from "./deadlines.ts";
import type { PortShare, SupervisorAction } from "./supervisor_events.ts";

/** What the gate answers: actions to carry out, and whether the master must stop (exit 2). */
export interface GateAnswer {
  actions: SupervisorAction[];
  /** The port stays served by another program: stop the master, telling why. */
  shared?: PortShare;
}

/**
 * The services start once every worker is ready and serves alone on its
 * port, or {@linkcode SERVICES_DELAY_MS} after the start if that comes first
 * (starting them costs the master a few milliseconds of main thread, which
 * booting workers would otherwise share); never once the master stops, nor
 * while a shared port is being looked at again.
 *
 * @example The delay comes first
 * ```ts
 * import assert from "node:assert/strict";
 * import { ServicesGate } from "./services_gate.ts";
 * const gate = new ServicesGate();
 * assert.deepEqual(gate.start(0), [{ type: "timer", at: 250, timer: { name: "services" } }]);
 * assert.deepEqual(gate.delayOver(false), [{ type: "startServices" }]);
 * assert.deepEqual(gate.delayOver(false), []);
 * ```
 */
export class ServicesGate {
  #started = false;
  /** A look at the app's port is under way: the services wait for its outcome. */
  #checking = false;
  /** Looks at the app's port that found it shared. */
  #sharedLooks = 0;

  /** The master starts at `now`: the services start by the delay at the latest. */
  start(now: number): SupervisorAction[] {
    return [{ type: "timer", at: now + SERVICES_DELAY_MS, timer: { name: "services" } }];
  }

  /** Every worker is ready for the first time: look at their port. */
  booted(): SupervisorAction[] {
    this.#checking = true;
    return [{ type: "checkPort" }];
  }

  /** The delay is over. */
  delayOver(stopping: boolean): SupervisorAction[] {
    // A master about to stop for a shared port serves nothing meanwhile.
    return this.#checking ? [] : this.#start(stopping);
  }

  /**
   * What a look at the port found. Another listener is looked at again a
   * moment later: one that goes meanwhile was a worker's own, closing (a
   * worker that drains as it loses its master), not a program's. One still
   * there stops the master, as gunicorn does on a taken address.
   */
  portChecked(shared: PortShare | undefined, now: number): GateAnswer {
    if (shared === undefined) {
      this.#checking = false;
      return { actions: [...this.#start(false), { type: "whenReady" }] };
    }
    if (this.#sharedLooks++ === 0) {
      return {
        actions: [{ type: "timer", at: now + PORT_RECHECK_MS, timer: { name: "portRecheck" } }],
      };
    }
    return { actions: [], shared };
  }

  /** The services, once. */
  #start(stopping: boolean): SupervisorAction[] {
    if (this.#started) return [];
    this.#started = true;
    return stopping ? [] : [{ type: "startServices" }];
  }
}
