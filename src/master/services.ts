/**
 * What a `HUP` reload applies beyond the workers, logging and supervision:
 * the hooks module (read again), the service name and the telemetry (a new
 * OTLP exporter, a re-bound metrics endpoint, the memory limit).
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { firstLine } from "../config/errors.ts";
import { serviceNameOf } from "../config/derived.ts";
import { reloadable, type ResolvedSettings } from "../config/load.ts";
import { type Hooks, loadHooks, replaceHooks } from "./hooks.ts";
import type { Telemetry } from "./telemetry.ts";

/** The longest a reload waits for the hooks module to load. */
const HOOKS_LOAD_MS = 5_000;

/** Options of {@linkcode MasterServices}. */
export interface MasterServicesOptions {
  /** The program's name, the service's name when the settings give none. */
  program: string;
  /** Base of a relative hooks path. */
  cwd: string;
  /** The hooks the arbiter calls: replaced in place by a reload. */
  hooks: Hooks;
  log: Logger;
}

/**
 * The master's services as the settings shape them, re-applied on reload.
 *
 * @example The service name follows the settings
 * ```ts
 * import assert from "node:assert/strict";
 * import { MasterServices } from "./services.ts";
 * import { typedConfig } from "../config/config.ts";
 * import { logger } from "../log/logging.ts";
 * const services = new MasterServices({ program: "server", cwd: ".", hooks: {}, log: logger("doc") });
 * assert.equal(services.serviceName(typedConfig({})), "server");
 * assert.equal(services.serviceName(typedConfig({ service_name: "api" })), "api");
 * ```
 */
export class MasterServices {
  #o: MasterServicesOptions;

  constructor(options: MasterServicesOptions) {
    this.#o = options;
  }

  /** The `service.name` the settings give, else the program's name. */
  serviceName(config: ResolvedSettings["config"]): string {
    return serviceNameOf(config, this.#o.program);
  }

  /**
   * Applies reloaded settings to the hooks and the telemetry, and resolves to
   * what the rest of the master is to apply: `next`, except the settings only
   * a restart changes, which keep their running values and are named in one
   * log line. Never throws: a hooks module that no longer loads keeps the old
   * hooks, an address that cannot be bound keeps the old one.
   */
  async reload(
    running: ResolvedSettings,
    next: ResolvedSettings,
    telemetry: Pick<Telemetry, "reconfigure">,
  ): Promise<ResolvedSettings> {
    const { settings, restart } = reloadable(running, next);
    if (restart.length > 0) {
      this.#o.log.warn("Reload left {what} as it was, needs a restart: {names}", {
        what: restart.length === 1 ? "a changed setting" : `${restart.length} changed settings`,
        names: restart.join(", "),
      });
    }
    await this.#reloadHooks(settings.config.hooks);
    try {
      await telemetry.reconfigure?.(settings.config, this.serviceName(settings.config));
    } catch (e) {
      this.#o.log.error("Reload: cannot reconfigure telemetry: {error}", { error: firstLine(e) });
    }
    return settings;
  }

  async #reloadHooks(path: string | null): Promise<void> {
    if (path === null) return replaceHooks(this.#o.hooks, {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      // The master's loop waits for the import: a module that never finishes
      // loading (a top-level await on nothing) must not stop supervision.
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${path} took more than ${HOOKS_LOAD_MS / 1000} s to load`)),
          HOOKS_LOAD_MS,
        );
      });
      replaceHooks(this.#o.hooks, await Promise.race([loadHooks(path, this.#o.cwd), late]));
    } catch (e) {
      this.#o.log.error("Reload: keeping the hooks as they were: {error}", { error: firstLine(e) });
    } finally {
      clearTimeout(timer);
    }
  }
}
