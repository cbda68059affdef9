/**
 * Drives the pure {@linkcode Supervisor} with a fake spawner and a fake clock:
 * every `spawn` action is answered at once with `spawned` (or `spawnFailed`),
 * time moves only when a test advances it, and every action is kept for the
 * test to look at.
 *
 * @module
 */
import {
  Supervisor,
  type SupervisorAction,
  type SupervisorConfig,
  type SupervisorEvent,
  type WorkerRef,
} from "../../src/master/supervisor.ts";

type Unstamped<E> = E extends unknown ? Omit<E, "now"> : never;
type Notice = Extract<SupervisorAction, { type: "notify" }>["notice"];

/** The fake spawner's answers. */
export interface SpawnBehaviour {
  /** Workers say hello (Deno socket channel) when true. */
  expectsHello?: boolean;
  requestLimit?: number;
  /** Reporters in each process (one per isolate). */
  isolates?: number;
  /** The next spawns throw with this message, in order (undefined: succeed). */
  failures?: Array<string | undefined>;
}

/** A supervisor, its fake clock and spawner, and everything it asked for. */
export class SupervisorDriver {
  readonly sup: Supervisor;
  now = 0;
  /** Every action, in order. */
  readonly log: SupervisorAction[] = [];
  /** Timers the supervisor armed and that have not fired, in the order asked. */
  readonly timers: Array<Extract<SupervisorAction, { type: "timer" }>> = [];
  readonly spawnBehaviour: SpawnBehaviour;

  constructor(config: Partial<SupervisorConfig> = {}, spawn: SpawnBehaviour = {}) {
    this.sup = new Supervisor({
      workers: 2,
      once: false,
      timeoutMs: 30_000,
      gracefulMs: 30_000,
      heartbeatMs: 5_000,
      ...config,
    });
    this.spawnBehaviour = spawn;
  }

  /**
   * Dispatches an event at the current time; returns its actions, those of
   * the spawner's answers included. Like the arbiter, the fake spawner
   * answers a spawn once the batch that asked for it is carried out.
   */
  send(event: Unstamped<SupervisorEvent>): SupervisorAction[] {
    const out: SupervisorAction[] = [];
    const pending: Array<SupervisorEvent | WorkerRef> = [
      { ...event, now: this.now } as SupervisorEvent,
    ];
    while (pending.length > 0) {
      const next = pending.shift()!;
      const actions = this.sup.dispatch("type" in next ? next : this.#answer(next));
      for (const a of actions) {
        out.push(a);
        this.log.push(a);
        if (a.type === "spawn") pending.push(a.worker);
        if (a.type === "timer") this.timers.push(a);
      }
    }
    return out;
  }

  #answer(w: WorkerRef): SupervisorEvent {
    const now = this.now;
    const failure = this.spawnBehaviour.failures?.shift();
    if (failure !== undefined) return { type: "spawnFailed", workerId: w.id, now, error: failure };
    return {
      type: "spawned",
      workerId: w.id,
      now,
      expectsHello: this.spawnBehaviour.expectsHello ?? false,
      requestLimit: this.spawnBehaviour.requestLimit ?? 0,
      isolates: this.spawnBehaviour.isolates ?? 1,
    };
  }

  /**
   * Fires the timers due by now, earliest first, as `due` events; returns
   * their actions. Timers fire only when asked, so that tests that do not look
   * at them see only ticks.
   */
  fire(): SupervisorAction[] {
    const out: SupervisorAction[] = [];
    for (;;) {
      const due = this.timers.filter((t) => t.at <= this.now).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) return out;
      this.timers.splice(this.timers.indexOf(due), 1);
      out.push(...this.send({ type: "due", timer: due.timer }));
    }
  }

  /** Moves the clock on by `ms` and ticks. */
  advance(ms: number): SupervisorAction[] {
    this.now += ms;
    return this.send({ type: "tick" });
  }

  /** Starts and brings every worker to ready (saying hello first when `speaking`). */
  boot(speaking = true): WorkerRef[] {
    const spawned = spawnsIn(this.send({ type: "start" }));
    for (const w of spawned) this.readyUp(w, speaking);
    return spawned;
  }

  /** A worker says hello (when `speaking`) and ready. */
  readyUp(w: WorkerRef, speaking = true): SupervisorAction[] {
    const out = speaking ? this.send({ type: "hello", workerId: w.id }) : [];
    return [...out, ...this.send({ type: "ready", workerId: w.id })];
  }

  /** A worker's process exits. */
  exit(w: WorkerRef, code: number | null, signal: string | null = null): SupervisorAction[] {
    return this.send({ type: "exited", workerId: w.id, code, signal });
  }

  /** The live worker in `slot` that is its current one (the first listed). */
  current(slot: number): WorkerRef {
    const view = this.sup.workers().find((v) => v.worker.slot === slot && v.phase !== "stopping");
    if (!view) throw new Error(`no current worker in slot ${slot}`);
    return view.worker;
  }
}

/** The workers a batch of actions spawns. */
export function spawnsIn(actions: SupervisorAction[]): WorkerRef[] {
  return actions.flatMap((a) => a.type === "spawn" ? [a.worker] : []);
}

/** The notices in a batch of actions. */
export function noticesIn(actions: SupervisorAction[]): Notice[] {
  return actions.flatMap((a) => a.type === "notify" ? [a.notice] : []);
}

/** The notices of one kind in a batch of actions. */
export function noticesOf<K extends Notice["kind"]>(
  actions: SupervisorAction[],
  kind: K,
): Array<Extract<Notice, { kind: K }>> {
  return noticesIn(actions).filter((n): n is Extract<Notice, { kind: K }> => n.kind === kind);
}

/**
 * `type:slot.generation` for each worker-directed action (`forget:slot`),
 * `type` for the rest; no notices, timers, or signals to an exited worker's
 * group (what every exit asks for: {@linkcode timed} shows them).
 */
export function brief(actions: SupervisorAction[]): string[] {
  const shown = actions.filter((a) =>
    a.type !== "notify" && a.type !== "timer" && a.type !== "signalGroup"
  );
  return shown.map((a) => {
    if (a.type === "signal") return `${a.signal}:${a.worker.slot}.${a.worker.generation}`;
    if (a.type === "forget") return `forget:${a.worker.slot}`;
    if ("worker" in a) return `${a.type}:${a.worker.slot}.${a.worker.generation}`;
    if (a.type === "exit") return `exit:${a.code}`;
    return a.type;
  });
}

/** The timers and group signals in a batch of actions: `timer:name@at`, `group:SIGNAL:slot.generation`. */
export function timed(actions: SupervisorAction[]): string[] {
  return actions.flatMap((a) => {
    if (a.type === "timer") return [`timer:${a.timer.name}@${a.at}`];
    if (a.type === "signalGroup") {
      return [`group:${a.signal}:${a.worker.slot}.${a.worker.generation}`];
    }
    return [];
  });
}
