/**
 * What every benchmark is given and returns.
 *
 * @module
 */
import type { Row } from "./_report.ts";
import type { Runtimes } from "./_runtimes.ts";

/** Shared settings of one `deno task bench` run. */
export interface BenchContext {
  /** Repository root, ending in `/`. */
  root: string;
  runtimes: Runtimes;
  /** The forklift binary (built when missing). */
  forklift: string;
  /** Fewer rounds and shorter loads: a quick look, not figures to publish. */
  quick: boolean;
  /** Prints a progress line. */
  log(line: string): void;
}

/** A benchmark: a name to select it by and a function that measures. */
export interface Bench {
  name: string;
  /** One line for `deno task bench --help`. */
  summary: string;
  run(ctx: BenchContext): Promise<Row[]>;
}
