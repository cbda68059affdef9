/**
 * Gives back the memory that only start-up needed. Most of an idle compiled
 * master's resident set is pages of its own executable that start-up touched
 * once (argument parsing, module loading, spawning, the JIT compilers) and
 * the kernel keeps mapped until memory runs short. Paging them out leaves the
 * few that idling touches again, so the master costs less than one worker.
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

/** madvise(2): reclaim the range now; pages come back on their next use. */
const MADV_PAGEOUT = 21;

/**
 * Pages out the executable's own mappings. Best effort: does nothing on Deno,
 * outside Linux, or where FFI is unavailable. Only for a single-file binary, whose
 * pages no other process shares (the kernel skips shared pages anyway).
 *
 * @example Once the workers are up
 * ```ts ignore
 * import { releaseStartupMemory } from "./memory.ts";
 * await releaseStartupMemory("/usr/local/bin/forklift");
 * ```
 */
export async function releaseStartupMemory(execPath: string): Promise<void> {
  const bun = (globalThis as any).Bun;
  if (bun?.FFI === undefined || (globalThis as any).process?.platform !== "linux") return;
  try {
    const maps: string = await bun.file("/proc/self/maps").text();
    const ranges: Array<[number, number]> = [];
    for (const line of maps.split("\n")) {
      const fields = line.split(/\s+/);
      if (fields[5] !== execPath) continue;
      const [start, end] = fields[0].split("-").map((x) => parseInt(x, 16));
      ranges.push([start, end - start]);
    }
    if (ranges.length === 0) return;
    const libc = bun.FFI.dlopen("libc.so.6", {
      madvise: { args: ["ptr", "usize", "i32"], returns: "i32" },
    });
    try {
      for (const [start, length] of ranges) libc.symbols.madvise(start, length, MADV_PAGEOUT);
    } finally {
      libc.close();
    }
  } catch {
    // No glibc, an old kernel (EINVAL) or FFI refused: the memory stays as it was.
  }
}
