/**
 * `forklift top`: a live view of a running master's workers, read from its
 * `/status` every second, with keys to reload and scale it.
 *
 * @module
 */
import type { StatusDocument } from "../export/status.ts";
import { isInteractive, openTerminal, signalProcess } from "../runtime/terminal.ts";
import type { CommandContext } from "./context.ts";
import { readStatus } from "./status.ts";
import { renderTop, topFrame, type TopSample } from "./top_view.ts";

const REFRESH_MS = 1000;

const KEYS: Record<string, { signal: "SIGHUP" | "SIGTTIN" | "SIGTTOU"; what: string }> = {
  r: { signal: "SIGHUP", what: "reload" },
  "+": { signal: "SIGTTIN", what: "one more worker" },
  "-": { signal: "SIGTTOU", what: "one worker fewer" },
};

/**
 * Runs `forklift top`. On a terminal: redraws every second until `q` or
 * Ctrl-C; `r` sends the master `HUP`, `+` `TTIN` and `-` `TTOU`. Not on a
 * terminal, or with `--once`: prints one view as plain text (two reads a
 * second apart, for the rates) and exits.
 *
 * @example
 * ```ts ignore
 * import { topCommand } from "./top.ts";
 * await topCommand(ctx);
 * ```
 */
export async function topCommand(ctx: CommandContext): Promise<number> {
  const sample = async (): Promise<TopSample | string> => {
    const read = await readStatus(ctx);
    return "error" in read ? read.error : { at: performance.now(), status: read.doc };
  };
  const first = await sample();
  if (typeof first === "string") {
    console.error(`forklift: ${first}`);
    return 1;
  }
  if (ctx.commandLine.switches.has("once") || !isInteractive()) {
    await new Promise((r) => setTimeout(r, REFRESH_MS));
    const second = await sample();
    const [prev, cur] = typeof second === "string" ? [undefined, first] : [first, second];
    const width = Number(ctx.runtime.env().COLUMNS) || 120;
    ctx.print(renderTop(topFrame(prev, cur, Date.now()), width).join("\n") + "\n");
    return 0;
  }
  return await live(ctx, first, sample);
}

async function live(
  ctx: CommandContext,
  first: TopSample,
  sample: () => Promise<TopSample | string>,
): Promise<number> {
  const term = openTerminal();
  let prev: TopSample | undefined;
  let cur = first;
  let note = "";
  let problem = "";
  let done: (code: number) => void = () => {};
  const finished = new Promise<number>((r) => done = r);
  const draw = () => {
    const { columns, rows } = term.size();
    const lines = renderTop(topFrame(prev, cur, Date.now()), columns);
    const foot = problem || note || "r reload   + add a worker   - remove one   q quit";
    const body = lines.slice(0, Math.max(1, rows - 2));
    term.write(
      "\x1b[H\x1b[2J" + body.join("\r\n") + "\r\n\r\n" + foot.slice(0, columns),
    );
  };
  const master = (): StatusDocument => cur.status;
  term.onKey((key) => {
    for (const ch of key) {
      if (ch === "q" || ch === "Q" || ch === "\x03" || ch === "\x04") return done(0);
      const action = KEYS[ch];
      if (action === undefined) continue;
      const pid = master().pid;
      note = signalProcess(pid, action.signal)
        ? `sent ${action.signal.slice(3)} to master ${pid} (${action.what})`
        : `could not signal master ${pid}: not running here, or not yours`;
      draw();
    }
  });
  term.onResize(draw);
  // Raw mode turns Ctrl-C into a key; a signal from elsewhere restores the terminal too.
  const offInt = ctx.runtime.onSignal("SIGINT", () => done(130));
  const offTerm = ctx.runtime.onSignal("SIGTERM", () => done(143));
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const tick = async () => {
    const next = await sample();
    if (stopped) return;
    if (typeof next === "string") problem = next;
    else {
      problem = "";
      prev = cur;
      cur = next;
    }
    draw();
    timer = setTimeout(tick, REFRESH_MS);
  };
  try {
    draw();
    timer = setTimeout(tick, REFRESH_MS);
    return await finished;
  } finally {
    stopped = true;
    clearTimeout(timer);
    offInt();
    offTerm();
    term.restore();
  }
}
