/**
 * `forklift run [OPTIONS] [--] COMMAND [ARGS...]`: resolves the program,
 * plans how each worker starts (preloading the reporter into deno and bun),
 * and hands over to the arbiter. `--dry-run` prints the plan and exits.
 *
 * @module
 */
import process from "node:process";
import { ConfigError } from "../config/errors.ts";
import { loadSettings, type ResolvedSettings } from "../config/load.ts";
import { logger, loggingOptions, reopenLogFile, setupLogging } from "../log/logging.ts";
import { outputWriter, writeTo } from "../log/write.ts";
import { Arbiter } from "../master/arbiter.ts";
import { programName, resolveCommand } from "../master/command.ts";
import { type Hooks, loadHooks } from "../master/hooks.ts";
import { type LaunchPlan, planLaunch, shellQuote } from "../master/inject.ts";
import { channelPath } from "../master/channel_path.ts";
import { preloadPath } from "../master/preload_path.ts";
import { ProcessSpawner } from "../master/spawner.ts";
import { MasterTelemetry } from "../master/telemetry.ts";
import { workerCount } from "../config/derived.ts";
import { MasterServices } from "../master/services.ts";
import { workerEnv } from "../protocol/env.ts";
import type { CommandContext } from "./context.ts";

/**
 * The `--dry-run` text: per worker, the environment changes and the argv.
 *
 * @example
 * ```ts
 * import { renderDryRun } from "./run.ts";
 * console.log(renderDryRun({ argv: ["/usr/bin/bun", "app.ts"], env: {}, injected: false, runtime: "bun" }, 2, 100));
 * ```
 */
export function renderDryRun(plan: LaunchPlan, workers: number, masterPid: number): string {
  const lines: string[] = [];
  for (let slot = 1; slot <= workers; slot++) {
    const env = {
      ...workerEnv({
        masterPid,
        slot,
        workers,
        // The token is drawn afresh for each process the master starts.
        channel: plan.channel === undefined ? undefined : { path: plan.channel, token: "<random>" },
      }),
      ...plan.env,
    };
    lines.push(
      `worker ${slot}: env ${
        Object.entries(env).map(([k, v]) => `${k}=${shellQuote([v])}`).join(" ")
      }`,
      `worker ${slot}: argv ${shellQuote(plan.argv)}`,
    );
  }
  lines.push(`reporter: ${plan.injected ? "preloaded" : "not injected"} (${plan.runtime})`);
  return lines.join("\n") + "\n";
}

/**
 * Runs `forklift run`.
 *
 * @example
 * ```ts ignore
 * import { runCommand } from "./run.ts";
 * const code = await runCommand(ctx);
 * ```
 */
export async function runCommand(ctx: CommandContext): Promise<number> {
  const { runtime, commandLine } = ctx;
  const program = commandLine.rest;
  if (program.length === 0) {
    throw new ConfigError(
      "forklift run needs a COMMAND: forklift run [OPTIONS] -- COMMAND [ARGS...]",
    );
  }
  const env = runtime.env();
  const cwd = runtime.cwd();
  const path = resolveCommand(program[0], env.PATH ?? "", cwd);
  const preload = preloadPath(env, runtime.compiled);
  const channel = channelPath(env);
  const plan = (settings: ResolvedSettings) =>
    planLaunch([path, ...program.slice(1)], {
      inject: settings.config.inject,
      preload: preload.deno,
      bunPreload: preload.bun,
      env,
      cwd,
      channel,
    });
  const first = plan(ctx.settings);
  const workers = workerCount(ctx.settings.config);
  if (commandLine.switches.has("dry-run")) {
    ctx.print(renderDryRun(first, workers, process.pid));
    return 0;
  }
  const hooksPath = ctx.settings.config.hooks;
  const hooks: Hooks = hooksPath ? await loadHooks(hooksPath, cwd) : {};
  const reloadSettings = () =>
    loadSettings({
      flags: commandLine.flags,
      config: commandLine.config,
      environment: commandLine.environment,
      env: runtime.env(),
      cwd,
      cpuCount: runtime.cpuCount(),
    });
  const log = logger("arbiter");
  for (const [fd, name] of [[1, "stdout"], [2, "stderr"]] as const) {
    outputWriter(fd).onDropped = (n) =>
      log.warn("Dropped {n} line(s) of output: the reader of the master's {name} did not keep up", {
        n,
        name,
      });
  }
  const services = new MasterServices({ program: programName(program), cwd, hooks, log });
  const serviceName = services.serviceName(ctx.settings.config);
  const spawner = new ProcessSpawner({
    settings: ctx.settings,
    plan,
    env,
    cwd,
    log,
    write: {
      stdout: (s) => writeTo(1, s),
      stderr: (s) => writeTo(2, s),
    },
  });
  const arbiter = new Arbiter({
    runtime,
    settings: ctx.settings,
    reloadSettings,
    spawner,
    telemetry: (snapshot, onMemory) =>
      new MasterTelemetry({
        serviceName,
        config: ctx.settings.config,
        log,
        snapshot,
        onMemory,
        onError: (e) => log.error("Metrics endpoint failed: {error}", { error: e.message }),
      }),
    hooks,
    services,
    log,
    reconfigureLogging: (s) => {
      try {
        setupLogging(loggingOptions(s.config));
      } catch (e) {
        log.error("Cannot open log file {file}, logging stays where it was: {error}", {
          file: s.config.logFile,
          error: (e as Error).message,
        });
      }
    },
    reopenLogs: () => {
      const error = reopenLogFile();
      if (error) log.error("Cannot reopen the log file: {error}", { error });
    },
  });
  return await arbiter.run();
}
