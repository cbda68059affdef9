/**
 * The signals the master acts on, and their installation: listeners only hand
 * the signal over, as gunicorn's handlers only queue it.
 *
 * @module
 */
import type { Runtime, SignalName } from "./runtime.ts";

/** The signals the master listens for. */
export const MASTER_SIGNALS: readonly SignalName[] = [
  "SIGTERM",
  "SIGINT",
  "SIGQUIT",
  "SIGHUP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGUSR1",
];

/**
 * Listens for every master signal; returns a function that removes the
 * listeners.
 *
 * @example
 * ```ts ignore
 * import { currentRuntime } from "./runtime.ts";
 * import { listenSignals } from "./signals.ts";
 * const stop = listenSignals(currentRuntime(), (signal) => queue.push(signal));
 * stop();
 * ```
 */
export function listenSignals(
  runtime: Pick<Runtime, "onSignal">,
  listener: (signal: SignalName) => void,
): () => void {
  const removers = MASTER_SIGNALS.map((s) => runtime.onSignal(s, () => listener(s)));
  return () => {
    for (const remove of removers) remove();
  };
}
